"""The native image probe, as the dataset scanner uses it (needs the extension built)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from PIL import Image

from pillsnap import _native, errors
from pillsnap.errors import (
    CorruptImageError,
    NativeIOError,
    PillsnapError,
    UnsupportedImageError,
)


def _png(path: Path, size: tuple[int, int] = (97, 128)) -> Path:
    # Noise-like content so the file is larger than the bytes cut off below.
    img = Image.effect_noise(size, 60).convert("RGB")
    img.save(path, format="PNG")
    return path


def _jpeg(path: Path, size: tuple[int, int] = (64, 48), progressive: bool = False) -> Path:
    Image.new("RGB", size, (200, 30, 90)).save(
        path, format="JPEG", quality=90, progressive=progressive
    )
    return path


def test_version_matches_the_package() -> None:
    import pillsnap

    assert _native.version() == pillsnap.__version__


def test_png_and_jpeg_report_format_size_and_bytes(tmp_path: Path) -> None:
    png = _png(tmp_path / "a.png", (976, 1280))
    jpg = _jpeg(tmp_path / "b.jpg", (480, 629))
    prog = _jpeg(tmp_path / "c.jpg", (33, 17), progressive=True)

    assert _native.probe_image(str(png)) == ("png", 976, 1280, png.stat().st_size)
    assert _native.probe_image(str(jpg)) == ("jpeg", 480, 629, jpg.stat().st_size)
    assert _native.probe_image(prog)[1:3] == (33, 17)


def test_accepts_pathlib_paths(tmp_path: Path) -> None:
    png = _png(tmp_path / "a.png")
    assert _native.probe_image(png) == _native.probe_image(str(png))
    assert _native.probe_images([png]) == [_native.probe_image(png)]


def test_truncated_png_is_corrupt(tmp_path: Path) -> None:
    # A download cut short: Pillow still opens it and reports a size, the probe does not.
    png = _png(tmp_path / "cut.png")
    png.write_bytes(png.read_bytes()[:-100])
    with Image.open(png) as img:
        assert img.size == (97, 128)

    with pytest.raises(CorruptImageError, match="missing IEND"):
        _native.probe_image(png)


def test_truncated_jpeg_is_corrupt(tmp_path: Path) -> None:
    jpg = _jpeg(tmp_path / "cut.jpg")
    jpg.write_bytes(jpg.read_bytes()[:-50])
    with pytest.raises(CorruptImageError, match="EOI"):
        _native.probe_image(jpg)


def test_garbage_is_corrupt_or_unsupported(tmp_path: Path) -> None:
    fake_png = tmp_path / "page.png"
    fake_png.write_bytes(b"<html>403 Forbidden</html>")
    with pytest.raises(CorruptImageError, match="bad PNG signature"):
        _native.probe_image(fake_png)

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(CorruptImageError, match="empty file"):
        _native.probe_image(empty)

    gif = tmp_path / "anim.gif"
    Image.new("P", (4, 4)).save(gif, format="GIF")
    with pytest.raises(UnsupportedImageError, match="GIF"):
        _native.probe_image(gif)

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UnsupportedImageError, match="not a PNG or JPEG"):
        _native.probe_image(text)


def test_missing_file_is_native_io_error_and_oserror(tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"
    with pytest.raises(NativeIOError) as info:
        _native.probe_image(missing)
    assert isinstance(info.value, OSError)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)

    with pytest.raises(OSError):
        _native.probe_image(missing)


def test_errors_are_pillsnap_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n")
    for target in (bad, tmp_path / "missing.png"):
        with pytest.raises(PillsnapError):
            _native.probe_image(target)
    # The classes come from pillsnap.errors itself, not look-alikes defined by the extension.
    with pytest.raises(errors.DataError):
        _native.probe_image(bad)


def test_probe_images_returns_results_in_order_without_raising(tmp_path: Path) -> None:
    good = _png(tmp_path / "good.png")
    jpg = _jpeg(tmp_path / "good.jpg")
    cut = _png(tmp_path / "cut.png")
    cut.write_bytes(cut.read_bytes()[:-100])
    text = tmp_path / "x.txt"
    text.write_text("not an image")
    missing = tmp_path / "missing.png"

    results = _native.probe_images([good, str(jpg), cut, text, missing], threads=2)

    assert results[0] == ("png", 97, 128, good.stat().st_size)
    assert isinstance(results[1], tuple)
    assert results[1][:3] == ("jpeg", 64, 48)
    assert isinstance(results[2], CorruptImageError)
    assert "cut.png" in str(results[2])
    assert isinstance(results[3], UnsupportedImageError)
    assert isinstance(results[4], NativeIOError)
    assert results[4].filename == str(missing)
    assert all(isinstance(r, PillsnapError) for r in results[2:])


def test_probe_images_keeps_order_across_chunks_and_thread_counts(tmp_path: Path) -> None:
    small = _png(tmp_path / "s.png", (3, 5))
    big = _jpeg(tmp_path / "b.jpg", (21, 13))
    missing = tmp_path / "m.png"
    # More paths than one chunk of 4096 so the chunk boundary is crossed.
    paths = [(small, big, missing)[i % 3] for i in range(5000)]

    for threads in (0, 1, 4):
        results = _native.probe_images(paths, threads=threads)
        assert len(results) == len(paths)
        sizes = [r[1:3] if isinstance(r, tuple) else r for r in results]
        assert sizes[0::3] == [(3, 5)] * len(sizes[0::3])
        assert sizes[1::3] == [(21, 13)] * len(sizes[1::3])
        assert all(isinstance(r, NativeIOError) for r in results[2::3])

    assert _native.probe_images([]) == []


def test_probe_images_rejects_a_bare_string() -> None:
    # A str is a sequence of characters: probing each letter would be a silent bug.
    with pytest.raises(TypeError):
        _native.probe_images("a.png")  # type: ignore[arg-type]
