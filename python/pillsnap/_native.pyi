"""Typed stubs for the Rust extension ``pillsnap._native`` (source: ``rust/src/python/``).

Errors are the classes of :mod:`pillsnap.errors`: ``NativeIOError`` (also an ``OSError``, with
``errno`` and ``filename`` set when the OS gave an error number), ``CorruptImageError``,
``UnsupportedImageError``, ``ImageTooLargeError``, ``PackError`` and ``LoaderError``; an
internal bug surfaces as the base ``PillsnapError``. Caller mistakes raise
``InvalidArgumentError`` (a ``ValueError``: a bad argument), the built-in ``IndexError`` (a
record number past the end) and ``TypeError``.

``tests/native/test_stub.py`` checks this file against the built module (mypy's stubtest).
"""

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeAlias, TypedDict, final

from typing_extensions import Self

from pillsnap.errors import PillsnapError

__all__ = [
    "PackLoader",
    "PackReader",
    "PackWriter",
    "Photo",
    "__version__",
    "crop_params_eval",
    "crop_params_train",
    "decode_crop",
    "decode_eval_sample",
    "decode_full",
    "decode_train_sample",
    "encode_jpeg",
    "jpeg_header",
    "prepare_records",
    "probe_image",
    "probe_images",
    "version",
]

# A default written `...` below is one the module's signature cannot show (pyo3 renders only
# plain literals); its comment gives the value.

# Stub-only names (not importable at run time), hence private.
# (format, width, height, file size in bytes)
_ImageInfo: TypeAlias = tuple[Literal["png", "jpeg"], int, int, int]
# (x, y, w, h, label): a box in the stored image's pixels and the class index of its pill.
_Box: TypeAlias = tuple[float, float, float, float, int]
# (payload, width, height, label[, boxes[, source_id]])
_RecordTuple: TypeAlias = (
    tuple[bytes, int, int, int]
    | tuple[bytes, int, int, int, Sequence[_Box]]
    | tuple[bytes, int, int, int, Sequence[_Box], int]
)
_StorageName: TypeAlias = Literal["jpeg", "raw_rgb"]

class _PackSummary(TypedDict):
    path: Path
    records: int
    boxes: int
    file_bytes: int
    payload_bytes: int
    padding_bytes: int  # zero bytes that page alignment costs
    resumed_records: int  # records found in the journal at open
    dropped_on_resume: int  # journal records whose bytes were missing or damaged

class _PackHeader(TypedDict):
    version: int
    storage: _StorageName
    class_hash: str
    records: int
    boxes: int
    created_unix: int
    data_start: int
    index_offset: int
    file_bytes: int
    metadata: dict[str, Any]

class _RecordMeta(TypedDict):
    width: int
    height: int
    label: int  # -1: none (e.g. a combination image labelled by its boxes)
    boxes: list[_Box]
    source_id: int  # the manifest row
    offset: int  # byte offset in the file, a multiple of 4096
    length: int
    checksum: int  # zlib.crc32 of the payload

class _LoaderStats(TypedDict):
    samples: int
    skipped: int  # records that could not be read and were replaced by the next ones
    last_error: str | None

class _AdviseReport(TypedDict):
    policy: Literal["none", "hotset"]
    willneed: bool
    lock_requested: int
    locked_bytes: int
    lock_error: str | None  # one line for the log when mlock was refused

__version__: str

def version() -> str:
    """The version of the native crate; matches ``pillsnap.__version__`` in a consistent build."""

def probe_image(path: str | os.PathLike[str]) -> _ImageInfo:
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
) -> list[_ImageInfo | PillsnapError]:
    """Probe many files in parallel on ``threads`` threads (0: all cores), order preserved.

    Reading from a cold disk is I/O bound: more threads than cores (e.g. 16) help there.

    Never raises for a bad file: its element is the exception *instance* that
    :func:`probe_image` would have raised, so callers test ``isinstance(r, PillsnapError)``.
    The GIL is released while files are read; Ctrl-C raises ``KeyboardInterrupt`` between
    chunks of 4096 paths.
    """

# --- JPEG decode and augment (source: rust/src/jpeg/, {augment,resize,sample}.rs) -----------
# `out` buffers: any writable, C-contiguous uint8 buffer (numpy array, bytearray,
# ``torch_tensor.numpy()``) of exactly the size the output needs; anything else raises
# ``InvalidArgumentError`` (a ``ValueError``). Decoding releases the GIL; each calling thread
# keeps its own decoder. Broken JPEG bytes raise ``CorruptImageError`` (libjpeg-turbo warnings
# count as corruption), CMYK / 12-bit / lossless JPEGs ``UnsupportedImageError``.

_Layout: TypeAlias = Literal["hwc", "chw"]
_Subsampling: TypeAlias = Literal["4:4:4", "4:2:2", "4:2:0", "gray"]

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
    layout: _Layout = "hwc",
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
    data: bytes, size: int, out: object, layout: _Layout = "hwc"
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
    layout: _Layout = "hwc",
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
    subsampling: _Subsampling = "4:2:0",
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
# --- Serving photos (source: rust/src/photo/, rust/src/python/photo.rs) -----------------------
# Use ``pillsnap.contract.photo.open_photo``: it runs this where it can and Pillow for what it
# refuses. ``out`` buffers as above (float32 for the letterbox).

_Region: TypeAlias = tuple[float, float, float, float]

@final
class Photo:
    """An uploaded JPEG or PNG, opened from its header alone: format, upright size (EXIF
    orientation applied) and ``max_pixels``.

    The outputs are ``pillsnap.contract.ops``' (``letterbox``, ``classifier_crops``) within
    resampling rounding, but a JPEG's letterbox is decoded DCT-scaled towards its size and
    each crop from its own window at full resolution; a PNG is decoded once. Outputs release
    the GIL; each calling thread keeps its own decoders. A photo is for one thread at a time.

    Raises:
        UnsupportedImageError: what the engine leaves to Pillow: another format, a CMYK,
            12-bit or lossless JPEG, a 16-bit, 1/2/4-bit grey or animated PNG, an orientation
            outside the EXIF block (XMP, PNG text) or an EXIF directory it does not read,
            more than 100 MP.
        ImageTooLargeError: more pixels than ``max_pixels`` (read from the header).
        CorruptImageError: a damaged header here; damaged pixel data (libjpeg-turbo warnings
            included, checksums verified) from the output that decodes it.
    """

    def __new__(cls, data: bytes | bytearray, max_pixels: int | None = None) -> Self: ...
    @property
    def format(self) -> Literal["JPEG", "PNG"]: ...
    @property
    def width(self) -> int:
        """Upright width, as boxes and answers use it."""
    @property
    def height(self) -> int:
        """Upright height."""
    def letterbox(self, size: int, out: object) -> tuple[float, int, int]:
        """The detector input into ``out`` (float32 ``(3, size, size)``, RGB in [0, 1], grey
        114 around): returns ``(scale, pad_x, pad_y)`` as in ``ops.Letterbox``."""
    def crops(
        self, regions: Sequence[_Region] | None, size: int, short_side: int | None, out: object
    ) -> None:
        """Classifier crops of the upright ``(x, y, w, h)`` regions (``None``: the whole photo)
        into ``out`` (uint8 ``(n, size, size, 3)``), as ``ops.classifier_crops``."""
    def decode(self, out: object) -> None:
        """The whole photo, upright, into ``out`` (uint8 ``(height, width, 3)``)."""

@final
class PackWriter:
    """Writes a pack: page-aligned, checksummed records, then the index and a header.

    Records go to ``NAME.partial`` and their index entries to ``NAME.journal`` (every
    ``checkpoint_every`` records, after the payloads were synced); ``finish`` renames the
    complete file to ``NAME``, so a file at ``NAME`` is always a whole pack. With
    ``resume=True`` an interrupted run continues: ``len(writer)`` tells how many records are
    done, so the caller skips those inputs. Without it, leftovers of a previous run are
    discarded. A finished pack already at ``NAME`` is replaced only when this one finishes.

    Args:
        path: the pack to write.
        storage: ``"jpeg"`` (encoded files) or ``"raw_rgb"`` (``width * height * 3`` bytes).
        class_hash: ``ClassIndex.hash`` (16 hex digits), stored in the header.
        metadata_json: a JSON object stored verbatim (short side, quality, manifest hash...).
        resume: continue an interrupted run of the same settings.
        checkpoint_every: records between journal writes; a kill loses at most this many.

    Raises:
        ValueError: a bad storage name, class hash or metadata.
        PackError: the journal to resume is damaged or from a run with other settings.
        NativeIOError: the files cannot be written, or another writer holds the pack.

    Used as a context manager, a clean exit finishes the pack; an exception (or ``close``,
    or deleting the writer) keeps the journal, so a rerun with ``resume=True`` goes on.
    """

    def __new__(
        cls,
        path: str | os.PathLike[str],
        storage: _StorageName = "jpeg",
        *,
        class_hash: str,
        metadata_json: str = "{}",
        resume: bool = False,
        checkpoint_every: int = 256,
    ) -> Self: ...
    def __len__(self) -> int:
        """Records written so far, including those resumed from the journal."""
    @property
    def path(self) -> Path:
        """Where the finished pack goes."""
    @property
    def resumed(self) -> int:
        """Records found in the journal at open (0 for a fresh run)."""
    @property
    def dropped_on_resume(self) -> int:
        """Journal records dropped at open because their bytes were missing or damaged."""
    def add(
        self,
        payload: bytes | bytearray,
        width: int,
        height: int,
        label: int,
        boxes: Sequence[_Box] = ...,  # none
        source_id: int = 0,
    ) -> int:
        """Append one encoded record at the next page boundary; returns its record number.

        ``label`` is the class index (-1: none); ``boxes`` are in the stored image's pixels;
        ``source_id`` is the manifest row. Releases the GIL while it writes.

        Raises:
            ValueError: a zero side, a raw payload of the wrong size, a non-finite or negative
                box, or a writer already finished or closed.
        """
    def last_source_id(self) -> int | None:
        """The source id of the last record written: where a resumed run picks up its inputs."""
    def add_many(self, records: Iterable[_RecordTuple]) -> int:
        """Append many records with the GIL released; returns the first one's record number.

        Ctrl-C is checked every 256 records. If one record is bad, those before it stay
        written and the ``ValueError`` names its position in the batch; an item that is not
        a tuple is a ``TypeError`` (raised before anything is written).
        """
    def finish(self) -> _PackSummary:
        """Write index, metadata and header, fsync, rename into place, delete the journal.

        The writer is closed afterwards, also when this raises (disk full, say): the journal
        then still lists every record, so reopening with ``resume=True`` and calling
        ``finish`` again completes the pack without rewriting any record.
        """
    def close(self) -> None:
        """Stop without finishing: checkpoint and keep the journal for ``resume=True``.

        Raises ``NativeIOError`` if the checkpoint fails (the journal may then lack the last
        records; a resume rewrites them). A no-op on a finished or closed writer.
        """
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> bool: ...

@final
class PackReader:
    """A read-only memory map of a pack, validated at open.

    Opening checks the magic, the format version, the header, index and metadata checksums
    and that every record and box range lies inside the file; it does not read payloads.
    The OS page cache shares the mapped pages between processes.

    Raises:
        PackError: a truncated, damaged or foreign file, or an unsupported version (the
            message says which part and, for a version, which ones this build reads).
        NativeIOError: the file cannot be opened.
    """

    def __new__(cls, path: str | os.PathLike[str]) -> Self: ...
    def __len__(self) -> int: ...
    @property
    def path(self) -> Path: ...
    @property
    def size_bytes(self) -> int:
        """File size in bytes."""
    def header(self) -> _PackHeader:
        """Header fields, with the metadata JSON parsed."""
    def record(self, i: int) -> bytes:
        """A copy of record ``i``'s payload (negative ``i`` counts from the end).

        Not checksummed here: call :meth:`verify` (loaders do, and skip bad records).
        """
    def meta(self, i: int) -> _RecordMeta:
        """Record ``i``'s index entry and boxes."""
    def labels(self) -> list[int]:
        """Every record's label, in order."""
    def verify(self, i: int) -> bool:
        """Whether record ``i``'s payload still matches its checksum."""
    def verify_all(self, threads: int = 0) -> list[int]:
        """Check every payload on ``threads`` threads (0: all cores); the bad records, sorted."""
    def advise(self, policy: Literal["none", "hotset"], lock_bytes: int = 0) -> _AdviseReport:
        """Set the page-cache policy of the record data.

        ``"hotset"``: ``madvise(MADV_WILLNEED)`` on the data, and ``mlock`` of its first
        ``lock_bytes`` (whole pages, at most the data). A refused ``mlock`` (``EPERM``,
        ``ENOMEM``: the memlock limit) is not an error: ``lock_error`` says why in one line
        for the log and the pages stay in the page cache unlocked. ``"none"``:
        ``MADV_NORMAL`` and nothing locked. A later call replaces the earlier lock.
        """
    def warm(self, threads: int = 0) -> int:
        """Read one byte of every page now (in parallel, GIL released); returns bytes covered."""

@final
class PackLoader:
    """The prefetching loader behind ``pillsnap.data.loader.PackLoader`` (use that).

    ``images`` (uint8, ``ring * batch_size * image_size**2 * 3`` bytes) and ``labels``
    (int64, ``ring * batch_size``) are the caller's ring of batch slots; threads write
    samples straight into them. Raises ``LoaderError`` when used after ``fork()`` or when a
    run of records cannot be read.
    """

    def __new__(
        cls,
        path: str | os.PathLike[str],
        images: object,
        labels: object,
        *,
        batch_size: int,
        image_size: int,
        train: bool = True,
        threads: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        ring: int = 4,
        rank: int = 0,
        world_size: int = 1,
        layout: Literal["hwc", "chw"] = "hwc",
        max_substitutes: int = 8,
        crop_scale: tuple[float, float] = ...,  # (0.08, 1.0), torchvision's
        hflip: float = 0.5,
    ) -> Self: ...
    def __len__(self) -> int:
        """Records in the pack."""
    def batches_per_epoch(self) -> int: ...
    def start_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Serve ``epoch`` (seeded shuffle and crops) from batch ``start_batch`` on, exactly as
        an uninterrupted epoch would, without decoding the skipped batches; an unfinished
        epoch is abandoned. A start past the epoch's end raises ValueError."""
    def next_batch(self) -> tuple[int, int] | None:
        """``(slot, size)`` of the next ready batch, None at the end of the epoch; waits with
        the GIL released and lets Ctrl-C through."""
    def release(self) -> None:
        """Give the oldest handed-out batch's slot back to the threads."""
    def advise(self, policy: Literal["none", "hotset"], lock_bytes: int = 0) -> _AdviseReport:
        """The cache policy on the mapping the threads read."""
    def stats(self) -> _LoaderStats:
        """``{"samples", "skipped", "last_error"}``."""

def prepare_records(
    items: Sequence[tuple[str | os.PathLike[str], tuple[float, float, float, float] | None,
                          Sequence[_Box]]],
    *,
    short_side: int,
    quality: int = 90,
    storage: _StorageName = "jpeg",
    threads: int = 0,
) -> list[tuple[bytes, int, int, list[_Box]] | PillsnapError]:
    """Decode (PNG or JPEG), crop, shrink to ``short_side`` (never enlarge) and encode each
    source for a pack, in parallel with the GIL released; a bad source yields its exception
    instance (not raised)."""
