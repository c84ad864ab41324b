"""The shared pre/post-processing ops: geometry, decoding, calibration, training match.

    PYTHONPATH=python python -m pytest tests/contract/test_ops.py -q
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
from PIL import Image

from pillsnap.contract import ops


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def test_ops_file_stands_alone() -> None:
    """export copies ops.py into Triton python models: only numpy, Pillow and stdlib."""
    tree = ast.parse(Path(ops.__file__).read_text(encoding="utf-8"))
    roots = {(n.module or "").split(".")[0] for n in ast.walk(tree)
             if isinstance(n, ast.ImportFrom)}
    roots |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
              for a in n.names}
    assert roots - {"__future__", "numpy", "PIL"} <= set(sys.stdlib_module_names), roots


def test_letterbox_places_the_photo_and_boxes_round_trip() -> None:
    photo = np.zeros((300, 200, 3), dtype=np.uint8)
    photo[100:160, 40:120] = 255  # a white pill
    tensor, placement = ops.letterbox(photo, 64)
    assert tensor.shape == (3, 64, 64) and tensor.dtype == np.float32
    assert placement.scale == pytest.approx(64 / 300) and placement.pad_y == 0
    assert placement.pad_x == (64 - round(200 * 64 / 300)) // 2
    assert tensor[:, 5, 0] == pytest.approx(114 / 255)  # grey padding on the left
    # the white block, found in the letterbox, maps back onto the photo
    ys, xs = np.where(tensor[0] > 0.9)
    found = ops.boxes_to_image(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]),
                               placement)[0]
    assert found == pytest.approx([40, 100, 120, 160], abs=1 / placement.scale + 0.5)
    boxes = np.array([[10.0, 20.0, 150.0, 280.0], [0, 0, 200, 300]])
    in_letterbox = boxes.copy()  # photo pixels -> letterbox pixels, by hand
    in_letterbox[:, [0, 2]] = boxes[:, [0, 2]] * placement.scale + placement.pad_x
    in_letterbox[:, [1, 3]] = boxes[:, [1, 3]] * placement.scale + placement.pad_y
    back = ops.boxes_to_image(in_letterbox, placement)
    assert back == pytest.approx(boxes, abs=1e-3)
    assert ops.Letterbox.from_array(placement.as_array()) == placement


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]],
                     dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.5, 0.7])
    assert ops.nms(boxes, scores, iou=0.5).tolist() == [1, 2]
    assert ops.nms(boxes, scores, iou=0.95).tolist() == [1, 0, 3, 2]
    assert ops.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    # a limit stops early with the full pass's first boxes
    assert ops.nms(boxes, scores, iou=0.95, limit=2).tolist() == [1, 0]
    rng = np.random.default_rng(3)  # many weak candidates, as from an untrained detector
    corners = rng.uniform(0, 600, (3000, 2))
    many = np.concatenate([corners, corners + rng.uniform(5, 80, (3000, 2))], axis=1)
    weak = rng.uniform(0, 0.01, 3000)
    full = ops.nms(many, weak, iou=0.45)
    assert len(full) > 50
    for limit in (1, 4, 32):
        assert ops.nms(many, weak, iou=0.45, limit=limit).tolist() == full[:limit].tolist()


def test_decode_yolo_reads_the_one_class_output_layout() -> None:
    anchors = 10
    out = np.zeros((5, anchors), dtype=np.float32)  # ultralytics: cx, cy, w, h, score
    out[:4, 2] = [30, 30, 20, 10]
    out[4, 2] = 0.9
    out[:4, 3] = [31, 30, 20, 10]  # the same pill again, lower score: suppressed
    out[4, 3] = 0.6
    out[:4, 7] = [5, 5, 4, 4]
    out[4, 7] = 0.3
    out[4, 8] = 0.1  # below the threshold
    boxes, scores = ops.decode_yolo(out, conf=0.25, iou=0.45, max_det=32)
    assert boxes.tolist() == [[20, 25, 40, 35], [3, 3, 7, 7]]
    assert scores == pytest.approx([0.9, 0.3])
    assert len(ops.decode_yolo(out, conf=0.25, iou=0.45, max_det=1)[0]) == 1
    with pytest.raises(ValueError, match="4 \\+ classes"):
        ops.decode_yolo(np.zeros((1, 5, anchors)), conf=0.25, iou=0.45, max_det=1)


def test_top_k_is_the_temperature_calibrated_softmax() -> None:
    logits = np.array([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 0.0]])
    idx, probs = ops.top_k(logits, 2, temperature=2.0)
    expected = np.exp(logits / 2) / np.exp(logits / 2).sum(1, keepdims=True)
    assert idx.tolist() == [[0, 1], [2, 0]]
    assert probs == pytest.approx(np.take_along_axis(expected, idx, 1), rel=1e-6)
    hot = ops.top_k(logits, 1, temperature=0.5)[1][0, 0]
    assert hot > ops.top_k(logits, 1, temperature=1.0)[1][0, 0] > probs[0, 0]
    assert ops.top_k(logits, 10)[0].shape == (2, 4)  # k clipped to the classes
    with pytest.raises(ValueError, match="temperature"):
        ops.softmax(logits, 0.0)


def test_eval_crop_is_the_loader_s(native_module: object) -> None:
    for w, h, size in [(480, 629, 384), (40, 40, 32), (41, 57, 32), (629, 480, 384)]:
        assert ops.eval_crop(w, h, size) == pytest.approx(
            native_module.crop_params_eval(w, h, size), abs=1e-9)


def test_normalise_matches_the_training_prefetcher() -> None:
    import torch

    from pillsnap.data.prefetch import DevicePrefetcher

    batch = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    x = ops.normalise(batch)
    prefetch = DevicePrefetcher.__new__(DevicePrefetcher)  # its normalisation, no loader
    scale = torch.tensor(ops.IMAGENET_STD) * 255.0
    prefetch._scale, prefetch._shift = scale.view(1, 3, 1, 1), (
        torch.tensor(ops.IMAGENET_MEAN) * 255.0).view(1, 3, 1, 1)
    prefetch.dtype = torch.float32
    reference = prefetch._normalise(torch.from_numpy(batch).permute(0, 3, 1, 2))
    assert x.shape == (2, 3, 8, 8) and x == pytest.approx(reference.numpy(), abs=1e-5)


def test_bad_uploads_get_their_kind() -> None:
    photo = np.full((20, 30, 3), 200, dtype=np.uint8)
    assert ops.decode_image(_png(photo)).shape == (20, 30, 3)
    for data, kind in [(b"", "unsupported"), (b"hello, not an image", "unsupported"),
                       (_png(photo)[:60], "corrupt"), (_jpeg(photo)[:300], "corrupt")]:
        with pytest.raises(ops.ImageInputError) as err:
            ops.decode_image(data)
        assert err.value.kind == kind, data[:20]
    with pytest.raises(ops.ImageInputError, match="limit is 100") as err:
        ops.decode_image(_png(photo), max_pixels=100)
    assert err.value.kind == "too_large"


def _frame_changed(jpeg: bytes, marker: int, precision: int) -> bytes:
    """The JPEG with its baseline frame header (SOF0) relabelled: what a 12-bit or a
    lossless encoder writes there (libjpeg-turbo's testimages/monkey12.jpg: SOF1, 12)."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[:at + 1] + bytes([marker]) + jpeg[at + 2:at + 4] + bytes([precision]) + \
        jpeg[at + 5:]


@pytest.mark.parametrize(("marker", "precision", "message"), [
    (0xC1, 12, "a 12-bit JPEG: only 8-bit JPEGs are supported"),
    (0xC3, 8, "a lossless JPEG: only lossy"),
])
def test_unsupported_jpeg_variants_are_named(marker: int, precision: int, message: str) -> None:
    data = _frame_changed(_jpeg(np.full((16, 16, 3), 90, dtype=np.uint8)), marker, precision)
    with pytest.raises(ops.ImageInputError, match=message) as err:
        ops.decode_image(data)
    assert err.value.kind == "unsupported"


def test_an_unreadable_file_with_a_png_signature_says_so() -> None:
    with pytest.raises(ops.ImageInputError, match="starts like a PNG file but cannot be read"):
        ops.decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)


def _jpeg(photo: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", exif=Image.Exif().tobytes())
    return buf.getvalue()


def test_pixel_bomb_beyond_pillows_own_guard_is_too_large() -> None:
    # a 20000 x 20000 PNG header: Pillow refuses it inside Image.open, before our check
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(ops.ImageInputError) as err:
        ops.decode_image(data, max_pixels=40_000_000)
    assert err.value.kind == "too_large"


def test_exif_orientation_is_applied() -> None:
    photo = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buf = io.BytesIO()
    photo.save(buf, "JPEG", exif=exif)
    assert ops.decode_image(buf.getvalue()).shape == (40, 20, 3)


def test_pill_crop_is_the_pack_writer_s() -> None:
    from pillsnap.data import pack

    assert pack.pill_crop is ops.pill_crop
    x0, y0, w, h = ops.pill_crop([100, 50, 40, 20], 976, 1280, 0.15)
    assert w == h == pytest.approx(52) and (x0, y0) == pytest.approx((94, 34))
    assert ops.pill_crop([0, 0, 900, 100], 976, 500, 0.15) == (200.0, 0.0, 500, 500)  # centred
    regions = ops.box_regions(np.array([[100, 50, 140, 70]]), 976, 1280, 0.15)
    assert regions[0] == pytest.approx((x0, y0, w, h))
