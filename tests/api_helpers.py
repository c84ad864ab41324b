"""Helpers shared by the API tests (tests/test_api_min.py and tests/serve/)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

from conftest import API_KEYS, ServerProcess

KEY = API_KEYS[0]
Photos = dict[str, Path]  # the pill_photos fixture: "single" and "combo" photos
__all__ = ["AUTH", "KEY", "Photos", "ServerProcess", "edi_schema_ok", "jpeg", "png_header_only"]
AUTH = {"X-API-Key": KEY}


def edi_schema_ok(candidate: dict[str, Any]) -> bool:
    """A candidate as DESIGN.md section 6 has it: k_code, edi_code (first of edi_codes), names,
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
