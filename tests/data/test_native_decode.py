"""Crop-before-decode JPEG samples from the native engine, checked against PIL references.

The native path decodes only the crop window (DCT-scaled when it is at least twice the
output), resizes with an antialiased bilinear filter and flips. PIL's equivalent is
decode -> crop -> ``resize(BILINEAR, reducing_gap=None)`` (antialiased) -> flip, which is
also what torchvision's ``RandomResizedCrop`` does on PIL images.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from pillsnap import _native
from pillsnap.errors import CorruptImageError, InvalidArgumentError, UnsupportedImageError

# Mean absolute error bounds, in levels of 255. Both sides run libjpeg-turbo with the same
# (accurate) settings and a fixed-point bilinear filter, so an unscaled crop differs only by
# rounding: measured MAE 0.002-0.05, never more than 1 level on any pixel. DCT scaling (crop
# >= 2x output) replaces part of the filter by the IDCT's own downscale: measured 0.3-0.5.
UNSCALED_MAE = 0.5
SCALED_MAE = 1.5


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: gradient, soft shapes, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / width * 200 + 30, yy / height * 180 + 40, (xx + yy) % 256], axis=-1)
    canvas = Image.fromarray(img.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(15, 90)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(rng.integers(0, 255, 3).tolist()))
    canvas = canvas.filter(ImageFilter.GaussianBlur(1.0))
    noisy = np.asarray(canvas, np.float32) + rng.normal(0, 3, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def jpeg_bytes(img: Image.Image, subsampling: str = "4:2:0", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, subsampling=subsampling, **kw)
    return buf.getvalue()


def pil_reference(data: bytes, box: tuple[float, float, float, float], out: tuple[int, int],
                  flip: bool) -> np.ndarray:
    """Decode, crop, resize (antialiased bilinear), flip: torchvision's resized_crop on PIL."""
    x, y, w, h = box
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = img.crop((int(x), int(y), int(x + w), int(y + h)))
    img = img.resize(out, Image.BILINEAR, reducing_gap=None)
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(img)


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def jpeg_420() -> bytes:
    return jpeg_bytes(photo(480, 629))


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2", "4:4:4"])
@pytest.mark.parametrize(
    ("box", "out", "flip"),
    [
        ((0, 0, 480, 629), (384, 384), False),
        ((37, 101, 250, 300), (384, 384), True),
        ((200, 10, 280, 600), (224, 224), False),
        ((5, 500, 100, 129), (64, 48), True),
    ],
)
def test_decode_crop_matches_pil(subsampling: str, box: tuple[int, int, int, int],
                                 out: tuple[int, int], flip: bool) -> None:
    data = jpeg_bytes(photo(480, 629, seed=1), subsampling=subsampling)
    dst = np.empty((out[1], out[0], 3), np.uint8)
    _native.decode_crop(data, *box, out[0], out[1], flip, dst)
    err = mae(dst, pil_reference(data, box, out, flip))
    assert err < UNSCALED_MAE, f"{subsampling} {box} -> {out}: MAE {err:.3f}"


def test_dct_scaled_crop_stays_close_to_pil() -> None:
    # 1600x1280 source, crops >= 768 px to 384: decoded at 1/2 or 1/4 scale.
    data = jpeg_bytes(photo(1600, 1280, seed=2))
    dst = np.empty((384, 384, 3), np.uint8)
    for box in [(0, 0, 1600, 1280), (100, 50, 800, 900), (301, 157, 1200, 1100)]:
        _native.decode_crop(data, *box, 384, 384, False, dst)
        err = mae(dst, pil_reference(data, box, (384, 384), False))
        assert err < SCALED_MAE, f"{box}: MAE {err:.3f}"


def test_grey_and_progressive_jpegs(jpeg_420: bytes) -> None:
    img = photo(480, 629, seed=3)
    for data, kind in [
        (jpeg_bytes(img.convert("L")), "gray"),
        (jpeg_bytes(img, progressive=True), "4:2:0"),
    ]:
        assert _native.jpeg_header(data) == (480, 629, kind)
        dst = np.empty((200, 200, 3), np.uint8)
        box = (40, 60, 300, 310)
        _native.decode_crop(data, *box, 200, 200, True, dst)
        assert mae(dst, pil_reference(data, box, (200, 200), True)) < UNSCALED_MAE
        if kind == "gray":
            assert (dst[..., 0] == dst[..., 1]).all() and (dst[..., 1] == dst[..., 2]).all()


def test_train_sample_uses_its_reported_crop_and_matches_pil(jpeg_420: bytes) -> None:
    dst = np.empty((384, 384, 3), np.uint8)
    flips = set()
    for index in range(8):
        x, y, w, h, flip = _native.decode_train_sample(jpeg_420, 384, 42, 0, index, dst)
        assert (x, y, w, h, flip) == _native.crop_params_train(480, 629, 384, 42, 0, index)
        assert 0.07 < w * h / (480 * 629) <= 1.0 and 3 / 4 - 0.02 < w / h < 4 / 3 + 0.02
        assert mae(dst, pil_reference(jpeg_420, (x, y, w, h), (384, 384), flip)) < UNSCALED_MAE
        flips.add(flip)
    assert flips == {True, False}


def test_eval_sample_matches_resize_then_centre_crop(jpeg_420: bytes) -> None:
    dst = np.empty((384, 384, 3), np.uint8)
    x, y, w, h = _native.decode_eval_sample(jpeg_420, 384, dst)
    assert (x, y, w, h) == pytest.approx(_native.crop_params_eval(480, 629, 384))
    # torchvision: Resize(int(384 / 0.875) = 438) -> 438x573, CenterCrop(384) at (27, 94).
    img = Image.open(io.BytesIO(jpeg_420)).convert("RGB")
    ref = np.asarray(img.resize((438, 573), Image.BILINEAR, reducing_gap=None))[94:478, 27:411]
    assert mae(dst, ref) < UNSCALED_MAE


def test_same_triple_same_sample_on_any_thread(jpeg_420: bytes) -> None:
    def sample(key: tuple[int, int, int]) -> tuple[tuple, bytes]:
        dst = np.empty((96, 96, 3), np.uint8)
        params = _native.decode_train_sample(jpeg_420, 96, *key, dst)
        return params, dst.tobytes()

    keys = [(7, epoch, index) for epoch in range(2) for index in range(6)]
    serial = [sample(k) for k in keys]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(sample, keys * 2))
    assert threaded == serial * 2
    assert len({params for params, _ in serial}) == len(keys)  # epochs and indices differ


def test_chw_layout_is_hwc_transposed(jpeg_420: bytes) -> None:
    hwc = np.empty((128, 128, 3), np.uint8)
    chw = np.empty((3, 128, 128), np.uint8)
    for index in range(4):  # both flip states
        a = _native.decode_train_sample(jpeg_420, 128, 1, 2, index, hwc, "hwc")
        b = _native.decode_train_sample(jpeg_420, 128, 1, 2, index, chw, "chw")
        assert a == b
        np.testing.assert_array_equal(chw, hwc.transpose(2, 0, 1))


def test_bad_output_buffers_raise_value_error(jpeg_420: bytes) -> None:
    good = np.empty((64, 64, 3), np.uint8)
    read_only = np.empty((64, 64, 3), np.uint8)
    read_only.setflags(write=False)
    cases = {
        "too small": np.empty((64, 63, 3), np.uint8),
        "float32": np.empty((64, 64, 3), np.float32),
        "read-only": read_only,
        "bytes": bytes(64 * 64 * 3),
        "non-contiguous": np.empty((64, 128, 3), np.uint8)[:, ::2],
        "not a buffer": [0] * (64 * 64 * 3),
    }
    for name, out in cases.items():
        with pytest.raises(ValueError, match=r"out") as info:
            _native.decode_train_sample(jpeg_420, 64, 0, 0, 0, out)
        assert isinstance(info.value, InvalidArgumentError), name
    with pytest.raises(InvalidArgumentError, match="layout"):
        _native.decode_train_sample(jpeg_420, 64, 0, 0, 0, good, "nhwc")
    with pytest.raises(InvalidArgumentError, match="outside"):
        _native.decode_crop(jpeg_420, 400, 0, 100, 10, 64, 64, False, good)
    # A bytearray works as well as a numpy array.
    raw = bytearray(64 * 64 * 3)
    _native.decode_train_sample(jpeg_420, 64, 0, 0, 0, raw)
    _native.decode_train_sample(jpeg_420, 64, 0, 0, 0, good)
    assert bytes(raw) == good.tobytes()


def test_corrupt_and_unsupported_jpegs_raise_pillsnap_errors(jpeg_420: bytes) -> None:
    dst = np.empty((64, 64, 3), np.uint8)
    for data in [b"", b"not a jpeg", jpeg_420[: len(jpeg_420) // 2], jpeg_420[:300]]:
        with pytest.raises(CorruptImageError, match="corrupt JPEG"):
            _native.decode_eval_sample(data, 64, dst)
    buf = io.BytesIO()
    Image.new("CMYK", (32, 32), (10, 20, 30, 40)).save(buf, format="JPEG")
    with pytest.raises(UnsupportedImageError, match="CMYK"):
        _native.decode_train_sample(buf.getvalue(), 64, 0, 0, 0, dst)


def test_encode_jpeg_round_trips_through_pil() -> None:
    rgb = np.asarray(photo(160, 120, seed=5))
    for subsampling in ["4:2:0", "4:4:4", "gray"]:
        data = _native.encode_jpeg(rgb, 160, 120, quality=92, subsampling=subsampling)
        assert _native.jpeg_header(data) == (160, 120, subsampling)
        back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        expected = np.asarray(Image.fromarray(rgb).convert("L").convert("RGB")) if \
            subsampling == "gray" else rgb
        assert mae(back, expected) < 4.0
    progressive = _native.encode_jpeg(rgb, 160, 120, progressive=True)
    assert Image.open(io.BytesIO(progressive)).info.get("progressive") == 1
    with pytest.raises(InvalidArgumentError):
        _native.encode_jpeg(rgb, 161, 120)
    with pytest.raises(InvalidArgumentError, match="subsampling"):
        _native.encode_jpeg(rgb, 160, 120, subsampling="4:1:0")
