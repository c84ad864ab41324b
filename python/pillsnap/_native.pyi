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
