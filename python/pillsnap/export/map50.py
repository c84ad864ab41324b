"""mAP@0.5 of one-class detections (numpy): the detector parity's accuracy measure.

    ap = map50(predictions=[(boxes, scores), ...], truths=[gt_boxes, ...])

All-point interpolated average precision (the area under the precision envelope), greedy
matching by score at IoU >= 0.5, as in the VOC/COCO evaluators. Parity compares the
PyTorch and ONNX numbers from this same function, so the method cannot bias the delta.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pillsnap.infer.ops import box_iou


def _true_positives(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray,
                    threshold: float) -> np.ndarray:
    hits = np.zeros(len(boxes), dtype=bool)
    if not len(boxes) or not len(truth):
        return hits
    iou = box_iou(boxes, truth)
    taken = np.zeros(len(truth), dtype=bool)
    for i in np.argsort(-scores, kind="stable"):
        candidates = np.where(~taken & (iou[i] >= threshold))[0]
        if candidates.size:
            best = candidates[np.argmax(iou[i, candidates])]
            taken[best] = hits[i] = True
    return hits


def map50(predictions: Sequence[tuple[np.ndarray, np.ndarray]],
          truths: Sequence[np.ndarray], threshold: float = 0.5) -> float:
    """Average precision over all images (xyxy boxes); 0.0 when there is no ground truth."""
    total = sum(len(t) for t in truths)
    if total == 0:
        return 0.0
    scores, hits = [], []
    for (boxes, conf), truth in zip(predictions, truths, strict=True):
        scores.append(np.asarray(conf, dtype=np.float64))
        hits.append(_true_positives(np.asarray(boxes), np.asarray(conf), np.asarray(truth),
                                    threshold))
    order = np.argsort(-np.concatenate(scores), kind="stable")
    tp = np.concatenate(hits)[order].astype(np.float64)
    if not tp.size:
        return 0.0
    recall = np.cumsum(tp) / total
    precision = np.cumsum(tp) / np.arange(1, tp.size + 1)
    recall = np.concatenate([[0.0], recall, [recall[-1]]])
    precision = np.concatenate([[1.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope
    step = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[step + 1] - recall[step]) * precision[step + 1]))
