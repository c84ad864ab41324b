"""HTTP errors: one JSON shape ``{"detail", "kind", "request_id"}`` for every refusal.

``kind`` is stable (clients and the ``pillsnap_errors_total`` metric key on it); ``detail``
is a sentence for a person.
"""

from __future__ import annotations

import logging

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pillsnap.errors import (
    CorruptImageError,
    ImageTooLargeError,
    ModelError,
    PillsnapError,
    UnsupportedImageError,
)
from pillsnap.serve.context import current_request_id

logger = logging.getLogger(__name__)


class BackendUnavailable(PillsnapError):
    """The inference backend cannot answer now (down, not ready, unreachable): 503."""


class BackendTimeout(BackendUnavailable):
    """The backend did not answer within ``serve.request_timeout_s``: 503."""


class Overloaded(BackendUnavailable):
    """The admission queue is full (``serve.max_queue``): 503 at once, with ``Retry-After``."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ApiError(HTTPException):
    """An HTTP refusal with a stable ``kind``."""

    def __init__(self, status_code: int, kind: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.kind = kind


# most specific first: Overloaded and BackendTimeout before BackendUnavailable
_MAPPED: tuple[tuple[type[Exception], int, str], ...] = (
    (UnsupportedImageError, 415, "unsupported_image"),
    (CorruptImageError, 400, "corrupt_image"),
    (ImageTooLargeError, 413, "too_large"),
    (Overloaded, 503, "overloaded"),
    (BackendTimeout, 503, "backend_timeout"),
    (BackendUnavailable, 503, "backend_unavailable"),
    (ModelError, 500, "model_error"),
)


def api_error(exc: Exception) -> ApiError | None:
    """The HTTP form of a PillSnap exception, or None for one that is a bug."""
    for cls, status, kind in _MAPPED:
        if isinstance(exc, cls):
            # RFC 9110 Retry-After: whole seconds; clients and proxies back off by it
            headers = ({"Retry-After": str(exc.retry_after_s)}
                       if isinstance(exc, Overloaded) else None)
            return ApiError(status, kind, str(exc), headers=headers)
    return None


def error_response(status: int, kind: str, detail: object,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"detail": detail, "kind": kind, "request_id": current_request_id()}
    return JSONResponse(body, status_code=status, headers=headers)


_KIND_BY_STATUS = {400: "bad_request", 401: "unauthorized", 403: "forbidden",
                   404: "not_found", 405: "method_not_allowed", 413: "too_large",
                   415: "unsupported_image", 422: "invalid_request"}


def _record(request: Request, kind: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(kind).inc()


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = getattr(exc, "kind", None) or _KIND_BY_STATUS.get(exc.status_code, "http_error")
    _record(request, kind)
    if exc.status_code >= 500:
        logger.warning("%s %s: %s (%s)", request.method, request.url.path, exc.detail, kind)
    return error_response(exc.status_code, kind, exc.detail, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    _record(request, "invalid_request")
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type")}
              for e in exc.errors()]
    return error_response(422, "invalid_request", errors)


async def _pillsnap_error(request: Request, exc: Exception) -> JSONResponse:
    error = api_error(exc) or ApiError(500, "internal", "internal error")
    return await _http_error(request, error)


def install_error_handlers(app: object) -> None:
    from fastapi import FastAPI

    assert isinstance(app, FastAPI)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(PillsnapError, _pillsnap_error)
