"""Typed stubs for the Rust extension ``pillsnap._native`` (source: ``rust/src/python.rs``).

Errors are the classes of :mod:`pillsnap.errors`: ``NativeIOError`` (also an ``OSError``, with
``errno`` and ``filename`` set when the OS gave an error number), ``CorruptImageError`` and
``UnsupportedImageError``; an internal bug surfaces as the base ``PillsnapError``.
"""

import os
from collections.abc import Sequence
from typing import Literal, TypeAlias

from pillsnap.errors import PillsnapError

# Stub-only alias (not importable at run time): (format, width, height, file size in bytes).
ImageInfo: TypeAlias = tuple[Literal["png", "jpeg"], int, int, int]

__version__: str

def version() -> str:
    """The version of the native crate; matches ``pillsnap.__version__`` in a consistent build."""

def probe_image(path: str | os.PathLike[str]) -> ImageInfo:
    """Check one PNG or JPEG without decoding it, reading only its head and tail.

    Catches bad signatures, broken headers and truncated files (missing PNG ``IEND`` or JPEG
    ``EOI``). Releases the GIL while it reads.

    Raises:
        NativeIOError: the file cannot be opened or read (missing, permissions, directory).
        CorruptImageError: the file is broken or truncated.
        UnsupportedImageError: the file is not a PNG or JPEG.
    """

def probe_images(
    paths: Sequence[str | os.PathLike[str]], threads: int = 0
) -> list[ImageInfo | PillsnapError]:
    """Probe many files in parallel on ``threads`` threads (0: all cores), order preserved.

    Reading from a cold disk is I/O bound: more threads than cores (e.g. 16) help there.

    Never raises for a bad file: its element is the exception *instance* that
    :func:`probe_image` would have raised, so callers test ``isinstance(r, PillsnapError)``.
    The GIL is released while files are read; Ctrl-C raises ``KeyboardInterrupt`` between
    chunks of 4096 paths.
    """

# --- JPEG decode and augment (source: rust/src/{jpeg,augment,resize,sample}.rs) -------------
# `out` buffers: any writable, C-contiguous uint8 buffer (numpy array, bytearray,
# ``torch_tensor.numpy()``) of exactly the size the output needs; anything else raises
# ``InvalidArgumentError`` (a ``ValueError``). Decoding releases the GIL; each calling thread
# keeps its own decoder. Broken JPEG bytes raise ``CorruptImageError`` (libjpeg-turbo warnings
# count as corruption), CMYK / 12-bit / lossless JPEGs ``UnsupportedImageError``.

Layout: TypeAlias = Literal["hwc", "chw"]
Subsampling: TypeAlias = Literal["4:4:4", "4:2:2", "4:2:0", "gray"]

def jpeg_header(data: bytes) -> tuple[int, int, str]:
    """``(width, height, subsampling)`` of JPEG bytes, from the header alone.

    Subsampling is one of ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``, ``"gray"``, ``"4:4:0"``,
    ``"4:1:1"``, ``"4:4:1"`` or ``"unknown"``.
    """

def decode_train_sample(
    data: bytes,
    size: int,
    seed: int,
    epoch: int,
    index: int,
    out: object,
    layout: Layout = "hwc",
    full_decode: bool = False,
) -> tuple[int, int, int, int, bool]:
    """One training sample: ``RandomResizedCrop(size)`` (torchvision defaults) + flip (p=0.5).

    The crop and flip are a pure function of ``(seed, epoch, index)`` and the image size;
    only the crop is decoded (DCT-scaled when it is at least twice ``size``), then resized
    (bilinear, antialiased) and flipped into ``out`` (``size * size * 3`` bytes, ``layout``).
    ``full_decode=True`` decodes the whole image first (the FFCV-style baseline, for
    benchmarks). Returns the crop ``(x, y, w, h, flipped)`` in source pixels.
    """

def decode_eval_sample(
    data: bytes, size: int, out: object, layout: Layout = "hwc"
) -> tuple[float, float, float, float]:
    """``Resize(int(size / 0.875))`` then ``CenterCrop(size)`` into ``out``, decoding only the
    source region that reaches the output. Returns that region ``(x, y, w, h)`` (fractional).
    """

def decode_crop(
    data: bytes,
    x: float,
    y: float,
    w: float,
    h: float,
    out_w: int,
    out_h: int,
    flip: bool,
    out: object,
    layout: Layout = "hwc",
) -> None:
    """Crop ``(x, y, w, h)`` (source pixels), resize to ``out_w`` x ``out_h`` (bilinear,
    antialiased, crop-then-resize), mirror when ``flip``, into ``out``."""

def decode_full(data: bytes, out: object) -> tuple[int, int]:
    """The whole image as packed RGB into ``out`` (``height * width * 3`` bytes); returns
    ``(width, height)``. Read the size with :func:`jpeg_header` first."""

def encode_jpeg(
    rgb: object,
    width: int,
    height: int,
    quality: int = 90,
    subsampling: Subsampling = "4:2:0",
    progressive: bool = False,
) -> bytes:
    """Encode packed RGB (``height * width * 3`` uint8, any buffer) as a JPEG."""

def crop_params_train(
    width: int, height: int, size: int, seed: int, epoch: int, index: int
) -> tuple[int, int, int, int, bool]:
    """The ``(x, y, w, h, flip)`` that :func:`decode_train_sample` uses for this image size
    and ``(seed, epoch, index)``. ``size`` does not change the crop (as in torchvision)."""

def crop_params_eval(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """The source region ``(x, y, w, h)`` that :func:`decode_eval_sample` uses."""
