"""Every exception PillSnap raises on purpose.

The Rust extension maps its one error enum onto these classes by name (see
``rust/src/python/errors.rs``), so Python code catches the same types whichever side failed.
"""

from __future__ import annotations


class PillsnapError(Exception):
    """Base class: catch this to handle any PillSnap failure."""


class ConfigError(PillsnapError, ValueError):
    """A config file, key, value or CLI override is invalid; the message lists valid options."""


class DataError(PillsnapError):
    """The dataset on disk is not what PillSnap expects."""


class CorruptImageError(DataError):
    """An image file is truncated, has a bad signature or cannot be decoded."""


class UnsupportedImageError(DataError):
    """An image is in a format PillSnap does not read (only PNG and JPEG are)."""


class LabelError(DataError):
    """A label JSON file is broken or lacks a required field."""


class PackError(DataError):
    """A pack file is truncated, foreign, of an unsupported version or fails a checksum, or the
    journal of an interrupted pack writer cannot be resumed."""


class NativeIOError(PillsnapError, OSError):
    """An operating-system I/O error inside the native extension (missing file, permissions)."""


class InvalidArgumentError(PillsnapError, ValueError):
    """A native call got impossible arguments (buffer sizes, a ring protocol misuse)."""


class LoaderError(PillsnapError, RuntimeError):
    """The prefetching loader cannot go on (a run of unreadable records, use after fork)."""


class ImageTooLargeError(DataError):
    """An uploaded image has more bytes or pixels than the server accepts."""


class ModelError(PillsnapError):
    """A checkpoint, ONNX model or export folder is missing, unreadable or inconsistent (its
    class index, metadata or files do not belong together)."""


class ParityError(ModelError):
    """An exported model does not reproduce its PyTorch original within the configured
    tolerances (``export.parity``); the report next to the model has the numbers."""


class EnrollError(PillsnapError):
    """A drug cannot be enrolled, removed or rolled back (too few photos, no pill in one, a
    K-code already known, another enrollment running); nothing was changed."""


class ServerError(PillsnapError, RuntimeError):
    """A model server (tritonserver) cannot be found, fails to start or to load its models;
    the message carries the reason and the tail of the server's log."""


# A bad upload's kind (``pillsnap.contract.ops.ImageInputError.kind``, or the ``kind:`` prefix of
# a Triton error) -> the exception both serving backends raise for it.
IMAGE_INPUT_ERRORS: dict[str, type[DataError]] = {
    "unsupported": UnsupportedImageError, "corrupt": CorruptImageError,
    "too_large": ImageTooLargeError}
