"""The serving photo: the Rust engine's letterbox and crops against Pillow's (ops), EXIF
orientations, bad uploads, the fallback and the switch.

    python -m pytest tests/contract/test_photo.py -q

Tolerances, in uint8 levels (letterbox values x 255): crops and undecimated letterboxes
differ only by the resampler's rounding (Pillow's and fast_image_resize's fixed point):
mean <= 0.5, max <= 2 (crops), max <= 1 (letterbox). A JPEG letterbox decoded DCT-scaled
(the IDCT's own 1/2 reduction instead of Pillow's bilinear) differs at sharp edges: mean
<= 1, 99th percentile <= 6 (a pill's outline or imprint can differ by 20-45 levels).
"""

from __future__ import annotations

import ast
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pillsnap.contract import ops, photo
from pillsnap.contract.photo import NativePhoto, PillowPhoto, open_photo

pytestmark = pytest.mark.skipif(not photo.native_available(), reason="extension not built")


def _scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A pill photo's look: a lit background, a few pills with sharp edges, sensor noise."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([120 + 60 * x / width, 110 + 50 * y / height,
                     90 + 30 * np.sin(x / 37.0) * np.cos(y / 23.0)], axis=-1)
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        r = rng.uniform(0.05, 0.12) * min(width, height)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((cx - 1.6 * r, cy - r, cx + 1.6 * r, cy + r), fill=colour)
        draw.text((cx - r / 2, cy - 4), "K12", fill=(20, 20, 20))
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-4, 5, (height, width, 3))
    return noisy.clip(0, 255).astype(np.uint8)


def _encode(image: np.ndarray | Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    picture.save(buf, fmt, **params)
    return buf.getvalue()


def _levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.float64) - b.astype(np.float64))


SCENE = _scene(488, 640)
REGIONS = ops.box_regions(np.array([[150, 260, 260, 330], [0, 0, 60, 50], [400, 560, 488, 640]]),
                          488, 640, 0.15)


@pytest.fixture(params=["jpeg", "png"])
def upload(request: pytest.FixtureRequest) -> bytes:
    if request.param == "jpeg":
        return _encode(SCENE, "JPEG", quality=90)
    return _encode(SCENE, "PNG")


def test_photo_file_stands_alone() -> None:
    """Copied into Triton's python models: stdlib and numpy, the ops copy, and the extension
    only inside its guard (tests/test_layers.py checks the guard)."""
    tree = ast.parse(Path(photo.__file__).read_text(encoding="utf-8"))
    roots = {(n.module or "").split(".")[0] for n in ast.walk(tree)
             if isinstance(n, ast.ImportFrom) and n.level == 0}
    roots |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
              for a in n.names}
    allowed = {"__future__", "numpy", "pillsnap", "pillsnap_ops"}
    assert roots - allowed <= set(sys.stdlib_module_names), roots


@pytest.mark.parametrize("short_side", [480, 96, None])
def test_crops_match_pillow(upload: bytes, short_side: int | None) -> None:
    native, pillow = open_photo(upload, engine="native"), open_photo(upload, engine="pillow")
    assert isinstance(native, NativePhoto) and isinstance(pillow, PillowPhoto)
    assert (native.width, native.height) == (pillow.width, pillow.height) == (488, 640)
    for regions in (REGIONS, None, REGIONS[:1]):
        ours = native.crops(regions, size=64, short_side=short_side)
        theirs = pillow.crops(regions, size=64, short_side=short_side)
        assert ours.shape == theirs.shape and ours.dtype == np.uint8
        diff = _levels(ours, theirs)
        assert diff.mean() <= 0.5 and diff.max() <= 2, (diff.mean(), diff.max())
    assert native.engine == "native"  # no silent fallback on the happy path
    assert native.crops([], size=64, short_side=short_side).shape == (0, 64, 64, 3)


@pytest.mark.parametrize("size", [640, 320, 64])
def test_letterbox_matches_pillow(upload: bytes, size: int) -> None:
    native, pillow = open_photo(upload, engine="native"), open_photo(upload, engine="pillow")
    ours, placed = native.letterbox(size)
    theirs, expected = pillow.letterbox(size)
    assert placed == expected
    assert ours.shape == theirs.shape == (3, size, size) and ours.dtype == np.float32
    assert ours[:, 0, 0] == pytest.approx([ops.LETTERBOX_FILL / 255] * 3)  # exact fill
    diff = _levels(ours * 255, theirs * 255)
    scaled = upload.startswith(b"\xff\xd8") and size <= 320  # 640 px: a 1/2 DCT reduction
    if scaled:
        assert diff.mean() <= 1 and np.percentile(diff, 99) <= 6, diff.mean()
    else:
        assert diff.mean() <= 0.25 and diff.max() <= 1.001, (diff.mean(), diff.max())
    assert native.engine == "native"


def test_a_photo_serves_every_output_in_any_order(upload: bytes) -> None:
    native, pillow = open_photo(upload, engine="native"), open_photo(upload, engine="pillow")
    whole = native.array()
    if upload.startswith(b"\xff\xd8"):
        assert np.array_equal(whole, pillow.array())  # the same libjpeg-turbo decode
    else:
        assert np.array_equal(whole, SCENE)
    # crops after the full decode come from it, and still match
    diff = _levels(native.crops(REGIONS, size=48, short_side=96),
                   pillow.crops(REGIONS, size=48, short_side=96))
    assert diff.max() <= 2
    assert native.letterbox(64)[1] == pillow.letterbox(64)[1]


def _stored(value: int) -> Image.Image:
    """SCENE as a camera would store it for EXIF orientation ``value``."""
    inverse = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_270}
    image = Image.fromarray(SCENE)
    return image.transpose(inverse[value]) if value in inverse else image


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("value", range(1, 9))
def test_exif_orientations_give_the_upright_photo(fmt: str, value: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = value
    params: dict[str, object] = {"exif": exif.tobytes()}
    if fmt == "JPEG":
        params |= {"quality": 95, "subsampling": 0}
    data = _encode(_stored(value), fmt, **params)
    native, pillow = open_photo(data, engine="native"), open_photo(data, engine="pillow")
    assert (native.width, native.height) == (pillow.width, pillow.height) == (488, 640)
    assert np.array_equal(native.array(), pillow.array())  # an exact permutation
    if fmt == "PNG":
        assert np.array_equal(native.array(), SCENE)
    fresh = open_photo(data, engine="native")  # crops from windows, not the full decode
    diff = _levels(fresh.crops(REGIONS, size=64, short_side=96),
                   pillow.crops(REGIONS, size=64, short_side=96))
    assert diff.mean() <= 0.5 and diff.max() <= 2, value
    diff = _levels(fresh.letterbox(320)[0] * 255, pillow.letterbox(320)[0] * 255)
    assert diff.mean() <= 1, value
    assert fresh.engine == "native"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def _relabelled(jpeg: bytes, marker: int, precision: int) -> bytes:
    at = jpeg.index(b"\xff\xc0")
    return jpeg[:at + 1] + bytes([marker]) + jpeg[at + 2:at + 4] + bytes([precision]) + \
        jpeg[at + 5:]


SMALL = SCENE[:64, :48].copy()
BAD_UPLOADS = {
    "empty": (b"", None),
    "garbage": (b"hello, not an image", None),
    "png signature only": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, None),
    "truncated png": (_encode(SMALL, "PNG")[:-200], None),
    "png header only": (_encode(SMALL, "PNG")[:60], None),
    "truncated jpeg": (_encode(SMALL, "JPEG")[:-300], None),
    "jpeg header only": (_encode(SMALL, "JPEG")[:300], None),
    "12-bit jpeg": (_relabelled(_encode(SMALL, "JPEG"), 0xC1, 12), None),
    "lossless jpeg": (_relabelled(_encode(SMALL, "JPEG"), 0xC3, 8), None),
    "pixel bomb": (_bomb(), 40_000_000),
    "over max_pixels": (_encode(SMALL, "JPEG"), 1000),
}


@pytest.mark.parametrize("name", sorted(BAD_UPLOADS))
def test_bad_uploads_get_pillow_s_kind_and_message(name: str) -> None:
    data, max_pixels = BAD_UPLOADS[name]
    with pytest.raises(ops.ImageInputError) as expected:
        ops.decode_image(data, max_pixels=max_pixels)
    with pytest.raises(ops.ImageInputError) as got:
        picture = open_photo(data, max_pixels=max_pixels, engine="native")
        picture.letterbox(64)
        picture.crops(None, size=32, short_side=40)
    assert (got.value.kind, str(got.value)) == (expected.value.kind, str(expected.value))


def test_a_damaged_jpeg_found_by_a_crop_alone_gets_pillow_s_error() -> None:
    """The header opens and an upper window decodes; the whole photo's decode finds the
    cut, as Pillow does."""
    data = _encode(SCENE, "JPEG", quality=90)[:-4000]
    picture = open_photo(data, engine="native")
    assert picture.engine == "native"
    picture.crops(REGIONS[1:2], size=32, short_side=40)  # the top-left window is intact
    with pytest.raises(ops.ImageInputError) as err:
        picture.crops(None, size=32, short_side=40)
    with pytest.raises(ops.ImageInputError) as expected:
        ops.decode_image(data)
    assert (err.value.kind, str(err.value)) == ("corrupt", str(expected.value))


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "CMYK JPEG", "16-bit PNG", "XMP orientation"])
def test_what_the_engine_does_not_read_goes_to_pillow(fmt: str) -> None:
    image = Image.fromarray(SMALL)
    if fmt == "CMYK JPEG":
        data = _encode(image.convert("CMYK"), "JPEG")
    elif fmt == "16-bit PNG":
        data = _encode(Image.fromarray(SMALL[..., 0].astype(np.uint16) * 257), "PNG")
    elif fmt == "XMP orientation":
        xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
        data = _encode(image, "JPEG", xmp=xmp)
    else:
        data = _encode(image, fmt)
    picture = open_photo(data, engine="native")
    assert picture.engine == "pillow"
    reference = ops.decode_image(data)
    assert np.array_equal(picture.array(), reference)
    assert (picture.width, picture.height) == (reference.shape[1], reference.shape[0])


def test_the_engine_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(SMALL, "PNG")
    assert open_photo(data).engine == "native"
    monkeypatch.setenv(photo.ENGINE_ENV, "pillow")
    assert isinstance(open_photo(data), PillowPhoto)
    assert open_photo(data, engine="native").engine == "native"  # an argument wins
    monkeypatch.setenv(photo.ENGINE_ENV, "turbo")
    with pytest.raises(ValueError, match="choose one of auto, native, pillow"):
        open_photo(data)


def test_the_extension_reports_what_it_refuses() -> None:
    from pillsnap import _native
    from pillsnap.errors import CorruptImageError, ImageTooLargeError, UnsupportedImageError

    with pytest.raises(UnsupportedImageError, match="not a JPEG or PNG"):
        _native.Photo(_encode(SMALL, "BMP"))
    with pytest.raises(ImageTooLargeError, match="48x64 = 3072 pixels"):
        _native.Photo(_encode(SMALL, "PNG"), 100)
    cut = _native.Photo(_encode(SMALL, "PNG")[:-100])
    with pytest.raises(CorruptImageError, match="corrupt PNG data"):
        cut.decode(np.empty((64, 48, 3), dtype=np.uint8))
    whole = _native.Photo(_encode(SMALL, "JPEG"))
    assert (whole.format, whole.width, whole.height) == ("JPEG", 48, 64)
