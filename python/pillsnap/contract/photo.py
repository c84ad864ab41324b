"""An uploaded photo and what the models get from it: the detector's letterbox and the
classifier's crops, through the Rust engine where it can, through Pillow where it cannot.

    from pillsnap.contract.photo import open_photo   # Triton: import pillsnap_photo
    photo = open_photo(image_bytes, max_pixels=40_000_000)   # reads the header only
    tensor, placement = photo.letterbox(640)                  # as ops.letterbox
    crops = photo.crops(regions, size=384, short_side=480)    # as ops.classifier_crops

Two implementations of one ``Photo``:
- ``NativePhoto`` (``pillsnap._native.Photo``, GIL released): a JPEG's letterbox is decoded
  DCT-scaled towards the letterbox size and each crop from its own window at full
  resolution (crop-before-decode); a PNG is decoded once. EXIF orientation is applied.
- ``PillowPhoto``: ``ops.decode_image`` then ``ops.letterbox`` / ``ops.classifier_crops``,
  the reference, and what runs where the extension is not installed (the NGC container).
Whatever the engine does not take (WebP, BMP, CMYK or 12-bit JPEGs, 16-bit PNGs, an
orientation outside EXIF, damaged data: any ``pillsnap.errors`` exception it raises, at open
or at an output) sends that photo to Pillow, so bad uploads get ``ops.decode_image``'s
``ImageInputError`` kinds and messages, and odd photos Pillow's pixels.

The answers agree within the resampling's rounding (``tests/contract/test_photo.py``):
crops within 1 uint8 level on average (Pillow's and fast_image_resize's fixed-point
bilinear differ by at most one level a resize), letterboxes of PNGs likewise; a JPEG's
letterbox comes from the IDCT's own 1/2, 1/4 or 1/8 reduction, a few levels off.
``PILLSNAP_PHOTO_ENGINE=pillow`` (or ``engine="pillow"``) forces the Pillow path, for parity
checks and benchmarks; ``native`` demands the extension; ``auto`` (default) uses it if present.

This file is copied next to ``pillsnap_ops.py`` into Triton's python models, as
``pillsnap_photo.py``: it imports ``ops`` relatively here and by that name there, and
``pillsnap._native`` (with ``pillsnap.errors``, which the extension raises) only inside the
guarded block below, the one ``pillsnap`` import a Triton copy may make
(``tests/test_layers.py``). Test: ``python -m pytest tests/contract/test_photo.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

if __package__:  # pillsnap.contract.photo
    from . import ops
else:  # Triton's copy, next to pillsnap_ops.py
    import pillsnap_ops as ops  # type: ignore[import-not-found,no-redef]

_native: Any
try:  # the Rust engine: absent where PillSnap is not installed (the NGC container)
    from pillsnap import _native
    from pillsnap.errors import PillsnapError as _EngineError
except ImportError:
    _native = None
    _EngineError = Exception  # never raised from here without the engine
if not hasattr(_native, "Photo"):  # an older installed extension
    _native = None

logger = logging.getLogger(__name__)

ENGINE_ENV = "PILLSNAP_PHOTO_ENGINE"
ENGINES = ("auto", "native", "pillow")


class Photo(Protocol):
    """An opened upload: its upright size, and the model inputs cut from it."""

    width: int
    height: int

    @property
    def engine(self) -> str:
        """``native`` or ``pillow``: which path made (or will make) the outputs."""

    def letterbox(self, size: int) -> tuple[np.ndarray, ops.Letterbox]:
        """As ``ops.letterbox`` of the decoded photo."""

    def crops(self, regions: Sequence[ops.Region] | None, *, size: int,
              short_side: int | None) -> np.ndarray:
        """As ``ops.classifier_crops`` of the decoded photo."""

    def array(self) -> np.ndarray:
        """The whole photo, upright, RGB uint8 HWC (as ``ops.decode_image``)."""


def native_available() -> bool:
    """Whether the Rust engine can be used here."""
    return _native is not None


def open_photo(data: bytes, *, max_pixels: int | None = None,
               engine: str | None = None) -> Photo:
    """``data`` opened on ``engine`` (default: ``$PILLSNAP_PHOTO_ENGINE``, else ``auto``).

    Raises ``ops.ImageInputError`` for a bad upload (Pillow's verdict), here or at the
    first output that needs the pixels.
    """
    chosen = engine or os.environ.get(ENGINE_ENV) or "auto"
    if chosen not in ENGINES:
        raise ValueError(f"unknown photo engine {chosen!r} ({ENGINE_ENV}); choose one of "
                         f"{', '.join(ENGINES)}")
    if chosen == "native" and _native is None:
        raise RuntimeError(f"{ENGINE_ENV}=native, but the extension pillsnap._native (with "
                           "Photo) is not installed here")
    if chosen == "pillow" or _native is None:
        return PillowPhoto.decode(data, max_pixels=max_pixels)
    try:
        engine_photo = _native.Photo(data, max_pixels)
    except _EngineError as exc:
        return _fall_back(data, max_pixels, exc)
    return NativePhoto(engine_photo, data, max_pixels)


def _fall_back(data: bytes, max_pixels: int | None, exc: BaseException) -> PillowPhoto:
    logger.debug("photo left to Pillow: %s", exc)
    return PillowPhoto.decode(data, max_pixels=max_pixels)


class PillowPhoto:
    """The decoded photo and ``ops``' Pillow code: the reference path."""

    engine = "pillow"

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.height, self.width = (int(n) for n in image.shape[:2])

    @classmethod
    def decode(cls, data: bytes, *, max_pixels: int | None = None) -> PillowPhoto:
        return cls(ops.decode_image(data, max_pixels=max_pixels))

    def letterbox(self, size: int) -> tuple[np.ndarray, ops.Letterbox]:
        return ops.letterbox(self.image, size)

    def crops(self, regions: Sequence[ops.Region] | None, *, size: int,
              short_side: int | None) -> np.ndarray:
        return ops.classifier_crops(self.image, regions, size=size, short_side=short_side)

    def array(self) -> np.ndarray:
        return self.image


class NativePhoto:
    """``pillsnap._native.Photo``; on the first engine error, the Pillow path from then on."""

    def __init__(self, engine_photo: Any, data: bytes, max_pixels: int | None) -> None:
        self._photo = engine_photo
        self._data = data
        self._max_pixels = max_pixels
        self._pillow: PillowPhoto | None = None
        self.width, self.height = int(engine_photo.width), int(engine_photo.height)

    @property
    def engine(self) -> str:
        return "native" if self._pillow is None else "pillow"

    def _reference(self, exc: BaseException) -> PillowPhoto:
        if self._pillow is None:
            self._pillow = _fall_back(self._data, self._max_pixels, exc)
        return self._pillow

    def letterbox(self, size: int) -> tuple[np.ndarray, ops.Letterbox]:
        if self._pillow is not None:
            return self._pillow.letterbox(size)
        tensor = np.empty((3, size, size), dtype=np.float32)
        try:
            scale, pad_x, pad_y = self._photo.letterbox(size, tensor)
        except _EngineError as exc:
            return self._reference(exc).letterbox(size)
        return tensor, ops.Letterbox(scale, pad_x, pad_y, self.width, self.height, size)

    def crops(self, regions: Sequence[ops.Region] | None, *, size: int,
              short_side: int | None) -> np.ndarray:
        if self._pillow is not None:
            return self._pillow.crops(regions, size=size, short_side=short_side)
        wanted = None if regions is None else [tuple(map(float, r)) for r in regions]
        out = np.empty((1 if wanted is None else len(wanted), size, size, 3), dtype=np.uint8)
        if not len(out):
            return out
        try:
            self._photo.crops(wanted, size, short_side, out)
        except _EngineError as exc:
            return self._reference(exc).crops(regions, size=size, short_side=short_side)
        return out

    def array(self) -> np.ndarray:
        if self._pillow is not None:
            return self._pillow.array()
        out = np.empty((self.height, self.width, 3), dtype=np.uint8)
        try:
            self._photo.decode(out)
        except _EngineError as exc:
            return self._reference(exc).array()
        return out
