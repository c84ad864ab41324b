"""mAP@0.5 of one-class detections (numpy): the detector parity's accuracy measure.

    ap = map50(predictions=[(boxes, scores), ...], truths=[gt_boxes, ...])

All-point interpolated average precision (the area under the precision envelope), greedy
matching by score at IoU >= 0.5 (``match_pills``, which ``pillsnap.eval`` reuses), as in
the VOC/COCO evaluators. Parity compares the PyTorch and ONNX numbers from this same
function, so the method cannot bias the delta.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pillsnap.contract.ops import box_iou


def match_pills(boxes: np.ndarray, scores: np.ndarray, truth_boxes: np.ndarray,
                iou: float = 0.5) -> np.ndarray:
    """For each predicted box, the index of the truth box it matches, or -1.

        matched = match_pills(boxes, scores, truth_boxes)   # e.g. [0, -1, 1]

    Greedy by descending score (stable for equal scores): each prediction takes the unused
    truth box with the highest IoU >= ``iou`` (xyxy boxes), and each truth box is used once,
    so a duplicate of an already matched pill stays unmatched (a false positive).
    """
    matched = np.full(len(boxes), -1, dtype=np.int64)
    if not len(boxes) or not len(truth_boxes):
        return matched
    overlap = box_iou(boxes, truth_boxes)
    taken = np.zeros(len(truth_boxes), dtype=bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = np.where(~taken & (overlap[i] >= iou))[0]
        if candidates.size:
            best = candidates[np.argmax(overlap[i, candidates])]
            taken[best] = True
            matched[i] = best
    return matched


def _true_positives(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray,
                    threshold: float) -> np.ndarray:
    # One matching rule for AP and for the evaluation's per-pill report (pillsnap.eval).
    return match_pills(boxes, scores, truth, iou=threshold) >= 0


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
