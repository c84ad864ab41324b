"""Helpers shared by the API tests (tests/test_api_min.py and tests/serve/)."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

API_KEYS = ("test-key-0123456789abcdef", "old-key-rotating-0123456789")


def api_settings(model_path: Path | None, **values: object) -> object:
    """Settings for a test server: two keys (rotation), small limits, no .env."""
    from pillsnap.serve.settings import Settings

    base: dict[str, object] = {"api_keys": list(API_KEYS), "model_path": model_path,
                               "backend": "embedded", "port": 0,
                               "max_upload_bytes": 256 * 1024, "max_pixels": 2_000_000,
                               "max_batch_images": 3, "request_timeout_s": 20.0}
    base.update(values)
    return Settings(**base)


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


KEY = API_KEYS[0]
Photos = dict[str, Path]  # the pill_photos fixture: "single" and "combo" photos
__all__ = ["API_KEYS", "AUTH", "KEY", "Photos", "ServerProcess", "api_settings", "edi_schema_ok",
           "jpeg", "png_header_only"]
AUTH = {"X-API-Key": KEY}


def edi_schema_ok(candidate: dict[str, Any]) -> bool:
    """A candidate as the README's API section has it: k_code, edi_code (first of edi_codes), names,
    company, shape, colours, imprints and a confidence in [0, 1]."""
    codes = candidate["edi_codes"]
    return (candidate["k_code"].startswith("K-")
            and isinstance(codes, list)
            and candidate["edi_code"] == (codes[0] if codes else None)
            and set(candidate["name"]) == {"ko", "en"}
            and set(candidate["company"]) == {"ko", "en"}
            and "shape" in candidate and isinstance(candidate["colors"], list)
            and set(candidate["imprints"]) == {"front", "back"}
            and 0.0 <= candidate["confidence"] <= 1.0)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with one tiny IDAT: a pixel bomb that
    costs nothing to send (the server must refuse it from the header, before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def jpeg(width: int = 64, height: int = 48, *, exif_orientation: int | None = None) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), (200, 180, 160))
    out = io.BytesIO()
    if exif_orientation is None:
        image.save(out, "JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()
