"""Reading multipart uploads after the API key was checked (so strangers cost no parsing).

The request body's total size is bounded by ``BodyLimit`` before this runs; here each file
is held to ``max_upload_bytes`` and a batch to ``max_batch_images``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from pillsnap.serve.errors import ApiError

MULTIPART_SLACK = 64 * 1024  # boundaries and part headers on top of the files themselves


@dataclass(frozen=True)
class Upload:
    filename: str | None
    data: bytes


def body_limit(max_upload_bytes: int, files: int) -> int:
    return max_upload_bytes * files + MULTIPART_SLACK


def request_body(field: str, *, many: bool) -> dict[str, Any]:
    """The OpenAPI requestBody for a multipart ``field`` (read by hand, see the module doc)."""
    binary = {"type": "string", "format": "binary"}
    prop = {"type": "array", "items": binary, "minItems": 1} if many else binary
    schema = {"type": "object", "required": [field], "properties": {field: prop}}
    return {"requestBody": {"required": True,
                            "content": {"multipart/form-data": {"schema": schema}}}}


async def read_uploads(request: Request, field: str, *, max_files: int,
                       max_bytes: int) -> tuple[list[Upload], float]:
    """The files of ``field`` and the milliseconds spent receiving them."""
    start = time.perf_counter()
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(422, "invalid_request", f"send the image as multipart/form-data field "
                       f"{field!r} (got content-type {content_type or 'none'!r})")
    async with request.form(max_fields=32) as form:
        parts = form.getlist(field)
        files = [p for p in parts if isinstance(p, UploadFile)]
        if len(files) != len(parts) or not files:
            raise ApiError(422, "invalid_request",
                           f"multipart field {field!r} must hold image file(s)")
        if len(files) > max_files:
            raise ApiError(413, "too_many_images", f"{len(files)} images; at most {max_files} "
                           "per request")
        uploads = []
        for part in files:
            data = await part.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ApiError(413, "too_large", f"{part.filename or 'image'} is over the "
                               f"upload limit of {max_bytes} bytes")
            uploads.append(Upload(part.filename, data))
    return uploads, round((time.perf_counter() - start) * 1000, 3)
