"""Detector parity: PyTorch vs ONNX Runtime on validation combination photos (the YOLO view).

    report = detector_parity(ck, Path("artifacts/export/detector/model.onnx"),
                             Path("artifacts/pack/yolo/data.yaml"), samples=64,
                             max_map_delta=0.01, min_iou=0.95)

Both runtimes get the same letterboxed tensors (``pillsnap.contract.ops.letterbox``) and their
outputs go through the same decoding (``ops.decode_yolo``). Two checks:
- mAP@0.5 against the labels, at ultralytics' validation settings (conf 0.001, NMS IoU
  0.7), differs by at most ``max_map_delta``;
- matched boxes: for each image the ``max_det`` highest-scoring anchors of the PyTorch
  output are compared with the same anchors of the ONNX output; the smallest IoU must be at
  least ``min_iou``. Comparing the same prediction slot needs no matching heuristics, and it
  stays meaningful for a barely trained detector whose scores are all below the thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
import yaml

from pillsnap.contract import ops
from pillsnap.errors import DataError
from pillsnap.export.detector import DetectorCheckpoint
from pillsnap.export.map50 import map50

VAL_CONF, VAL_IOU, VAL_MAX_DET = 0.001, 0.7, 300  # ultralytics' `val` defaults
BATCH = 8


def val_photos(data_yaml: Path, samples: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to ``samples`` (RGB photo, xyxy ground truth) pairs of the YOLO view's val split."""
    if not data_yaml.is_file():
        raise DataError(f"no YOLO dataset description at {data_yaml} for the detector parity "
                        "check: write it (python -m pillsnap.data yolo) or pass --det-data")
    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    folder = Path(data.get("path", data_yaml.parent)) / data["val"]
    photos = sorted(folder.glob("*.jpg"))[:samples]
    if not photos:
        raise DataError(f"no validation photos in {folder}")
    out = []
    for photo in photos:
        image = ops.decode_image(photo.read_bytes())
        label = Path(str(photo.with_suffix(".txt")).replace("/images/", "/labels/"))
        rows = np.loadtxt(label, ndmin=2) if label.is_file() else np.zeros((0, 5))
        h, w = image.shape[:2]
        cx, cy, bw, bh = (rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h)
        truth = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        out.append((image, truth.reshape(-1, 4)))
    return out


def _run(ck: DetectorCheckpoint, sess: ort.InferenceSession,
         tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    torch_out, onnx_out = [], []
    network = ck.network
    for start in range(0, len(tensors), BATCH):
        chunk = tensors[start:start + BATCH]
        with torch.no_grad():
            torch_out.append(network(torch.from_numpy(chunk))[0].numpy())
        onnx_out.append(sess.run(["output0"], {"images": chunk})[0])
    return np.concatenate(torch_out), np.concatenate(onnx_out)


def _slot_iou(a: np.ndarray, b: np.ndarray, top: int) -> np.ndarray:
    """IoU of the same anchors in two outputs, for the ``top`` best anchors of ``a``."""
    best = np.argsort(-a[4:].max(axis=0), kind="stable")[:top]

    def xyxy(o: np.ndarray) -> np.ndarray:
        cx, cy, w, h = o[:4, best]
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)

    boxes_a, boxes_b = xyxy(a), xyxy(b)
    return np.array([ops.box_iou(p[None], q[None])[0, 0] for p, q in zip(boxes_a, boxes_b,
                                                                        strict=True)])


def _decode(output: np.ndarray, placement: ops.Letterbox) -> tuple[np.ndarray, np.ndarray]:
    boxes, scores = ops.decode_yolo(output, conf=VAL_CONF, iou=VAL_IOU, max_det=VAL_MAX_DET)
    return ops.boxes_to_image(boxes, placement), scores


def detector_parity(ck: DetectorCheckpoint, onnx_path: Path, data_yaml: Path, *,
                    samples: int, max_map_delta: float, min_iou: float) -> dict[str, Any]:
    photos = val_photos(data_yaml, samples)
    boxed = [ops.letterbox(image, ck.image_size) for image, _ in photos]
    tensors = np.stack([t for t, _ in boxed])
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    reference, exported = _run(ck, sess, tensors)
    truths = [truth for _, truth in photos]
    pt = [_decode(o, p) for o, (_, p) in zip(reference, boxed, strict=True)]
    ox = [_decode(o, p) for o, (_, p) in zip(exported, boxed, strict=True)]
    map_pt, map_ox = map50(pt, truths), map50(ox, truths)
    slot_iou = np.concatenate([_slot_iou(a, b, ck.max_det)
                               for a, b in zip(reference, exported, strict=True)])
    served = sum(int((s >= ck.conf).sum()) for _, s in pt)
    delta = abs(map_pt - map_ox)
    checks = {"map50_delta": delta <= max_map_delta,
              "matched_box_iou": float(slot_iou.min()) >= min_iou,
              "finite": bool(np.isfinite(exported).all())}
    return {
        "model": "detector", "onnx": str(onnx_path), "checkpoint": str(ck.path),
        "source": str(data_yaml), "samples": len(photos), "image_size": ck.image_size,
        "map50_pytorch": map_pt, "map50_onnx": map_ox, "map50_delta": delta,
        "max_map50_delta": max_map_delta, "matched_boxes": int(slot_iou.size),
        "matched_iou_min": float(slot_iou.min()), "matched_iou_mean": float(slot_iou.mean()),
        "min_iou": min_iou, "output_mse": float(np.mean((reference - exported) ** 2)),
        "score_max_abs_diff": float(np.abs(reference[:, 4:] - exported[:, 4:]).max()),
        "detections_pytorch": sum(len(s) for _, s in pt),
        "detections_onnx": sum(len(s) for _, s in ox),
        "detections_above_serving_conf": served,
        "checks": checks,
        "summary": f"mAP@0.5 {map_pt:.4f} vs {map_ox:.4f} (delta {delta:.4g}, max "
                   f"{max_map_delta:g}), matched-box IoU min {slot_iou.min():.4f} over "
                   f"{slot_iou.size} boxes on {len(photos)} val photos",
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
    }
