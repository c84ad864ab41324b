"""Evaluation numbers from collected predictions (numpy only, so serve-only installs run it).

    from pillsnap.eval import metrics
    metrics.map_range(predictions=[(boxes, scores), ...], truths=[gt_boxes, ...])
    metrics.threshold_for_accuracy(confidence, correct, target=0.99)   # -> (0.87, 0.93)

Detection: per-pill matching and mAP come from ``pillsnap.export.map50`` (re-exported here),
so the evaluation, the export parity check and any per-pill report count a hit the same way.
Classification: top-k accuracy, the risk-coverage curve of "answer only above a confidence",
calibration (ECE with the bins of ``pillsnap.train.calibrate``), open-set separation (AUROC,
false-accept rate at a known-class recall), latency percentiles and the worst confusions.
Every function accepts empty inputs and then returns the documented neutral value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from pillsnap.export.map50 import map50, match_pills

__all__ = [
    "IOU_THRESHOLDS",
    "auroc",
    "calibration",
    "confused_pairs",
    "fpr_at_tpr",
    "latency_summary",
    "map50",
    "map_range",
    "match_pills",
    "risk_coverage",
    "threshold_for_accuracy",
    "top_k_accuracy",
    "worst_classes",
]

# COCO's 0.50, 0.55, ..., 0.95: the values of np.arange(0.5, 0.96, 0.05) without its
# accumulated rounding (0.6000000000000001), so "IoU >= t" compares against the stated t.
IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)

# Ratios such as 99 / 100 are compared with targets such as 0.99: a hair of slack keeps a
# set that meets the target exactly from failing on the last bit.
_EPS = 1e-12


def map_range(predictions: Sequence[tuple[np.ndarray, np.ndarray]],
              truths: Sequence[np.ndarray],
              thresholds: ArrayLike = IOU_THRESHOLDS) -> float:
    """mAP@0.5:0.95: the mean of ``map50`` over IoU thresholds (COCO's ten by default).

        map_range([(boxes, scores)], [truth_boxes])                 # -> 0.62
        map_range([(boxes, scores)], [truth_boxes], thresholds=[0.5, 0.75])

    0.0 without ground truth or without thresholds.
    """
    values = [map50(predictions, truths, threshold=float(t))
              for t in np.asarray(thresholds, dtype=np.float64).ravel()]
    return float(np.mean(values)) if values else 0.0


def top_k_accuracy(ranked: Sequence[Sequence[str]], truth: Sequence[str], k: int) -> float:
    """Share of samples whose true K-code is among the first ``k`` of its ranked list.

        top_k_accuracy([["K-1", "K-2"], ["K-3", "K-1"]], ["K-1", "K-1"], k=1)   # -> 0.5

    0.0 for no samples; a list shorter than ``k`` is used as it is.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    hits = [code in list(codes)[:k] for codes, code in zip(ranked, truth, strict=True)]
    return sum(hits) / len(hits) if hits else 0.0


def _confidence_and_correct(confidence: ArrayLike,
                            correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    if conf.shape != ok.shape:
        raise ValueError(f"{conf.size} confidences but {ok.size} correctness flags")
    return conf, ok


def risk_coverage(confidence: ArrayLike, correct: ArrayLike) -> dict[str, np.ndarray]:
    """Accuracy and coverage when answering only at or above each distinct confidence.

        curve = risk_coverage([0.9, 0.8, 0.8, 0.3], [1, 1, 0, 0])
        # threshold [0.9, 0.8, 0.3], coverage [0.25, 0.75, 1.0], accuracy [1.0, 0.667, 0.5]

    Arrays ``threshold`` (descending), ``coverage`` (share of samples accepted) and
    ``accuracy`` (share of the accepted that are correct), one entry per distinct confidence;
    all empty for no samples. Risk is ``1 - accuracy``.
    """
    conf, ok = _confidence_and_correct(confidence, correct)
    order = np.argsort(-conf, kind="stable")
    conf, hits = conf[order], np.cumsum(ok[order])
    # The last position of each run of equal confidences: a threshold accepts all of a tie.
    # (The final position always ends a run, unless there are no samples at all.)
    ends = np.flatnonzero(np.append(conf[1:] != conf[:-1], conf.size > 0))
    accepted = ends + 1
    return {"threshold": conf[ends],
            "coverage": accepted / max(conf.size, 1),
            "accuracy": hits[ends] / np.maximum(accepted, 1)}


def threshold_for_accuracy(confidence: ArrayLike, correct: ArrayLike,
                           target: float = 0.99) -> tuple[float, float] | None:
    """The lowest confidence threshold whose accepted set is at least ``target`` accurate.

        threshold_for_accuracy([0.9, 0.8, 0.8, 0.3], [1, 1, 0, 0], target=0.6)
        # -> (0.8, 0.75): answer at confidence >= 0.8, which covers 75 % of samples

    Returns ``(threshold, coverage)``, the most coverage that keeps the target, or None when
    no non-empty accepted set reaches it (including no samples).
    """
    curve = risk_coverage(confidence, correct)
    reaching = np.flatnonzero(curve["accuracy"] >= target - _EPS)
    if not reaching.size:
        return None
    last = reaching[-1]  # thresholds descend, so the last qualifying one is the lowest
    return float(curve["threshold"][last]), float(curve["coverage"][last])


def calibration(confidence: ArrayLike, correct: ArrayLike, bins: int = 15) -> dict[str, Any]:
    """ECE and a reliability diagram's bins: equal-width confidence bins ``(lo, hi]``.

        calib = calibration(confidence, correct)   # calib["ece"] -> 0.031

    ``ece`` is the mean of ``|accuracy - confidence|`` over bins weighted by the bin's share
    of all samples, as ``pillsnap.train.calibrate.expected_calibration_error`` computes it
    (a confidence of exactly 0 falls in no bin there, nor here). Per bin: ``count``,
    ``accuracy`` and ``confidence`` (means, None for an empty bin), and the ``edges``.
    No samples: ``ece`` 0.0 and empty bins.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    conf, ok = _confidence_and_correct(confidence, correct)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts: list[int] = []
    accuracy: list[float | None] = []
    mean_conf: list[float | None] = []
    ece = 0.0
    for lo, hi in pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        count = int(inside.sum())
        counts.append(count)
        if count:
            acc, avg = float(ok[inside].mean()), float(conf[inside].mean())
            ece += abs(acc - avg) * count / conf.size
            accuracy.append(acc)
            mean_conf.append(avg)
        else:
            accuracy.append(None)
            mean_conf.append(None)
    return {"ece": ece, "bins": bins, "edges": edges.tolist(), "count": counts,
            "accuracy": accuracy, "confidence": mean_conf}


def auroc(known_scores: ArrayLike, unknown_scores: ArrayLike) -> float:
    """Probability that a known-class sample scores above an unknown one (ties count half).

        auroc([0.9, 0.7], [0.7, 0.2])   # -> (1 + 1 + 0.5 + 1) / 4 = 0.875

    The Mann-Whitney U statistic over all (known, unknown) pairs; a higher score means "more
    like a known class". 0.5 (no evidence either way) when either side is empty.
    """
    known = np.asarray(known_scores, dtype=np.float64).ravel()
    unknown = np.sort(np.asarray(unknown_scores, dtype=np.float64).ravel())
    if not known.size or not unknown.size:
        return 0.5
    below = np.searchsorted(unknown, known, side="left")
    tied = np.searchsorted(unknown, known, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (known.size * unknown.size))


def fpr_at_tpr(known_scores: ArrayLike, unknown_scores: ArrayLike,
               tpr: float = 0.95) -> tuple[float, float]:
    """The threshold that accepts ``tpr`` of known samples and the unknowns it lets through.

        fpr_at_tpr(known, unknown, tpr=0.95)   # -> (0.42, 0.08): 8 % of unknowns accepted

    Returns ``(threshold, false_accept_rate)``: the highest threshold at which at least
    ``tpr`` of the known samples score ``>= threshold``, and the share of unknown samples
    that also score ``>= threshold`` (0.0 when there are none). Without known samples no
    threshold accepts any, so ``(inf, 0.0)``.
    """
    if not 0.0 <= tpr <= 1.0:
        raise ValueError(f"tpr must be within [0, 1], got {tpr}")
    known = np.sort(np.asarray(known_scores, dtype=np.float64).ravel())[::-1]
    unknown = np.asarray(unknown_scores, dtype=np.float64).ravel()
    if not known.size:
        return math.inf, 0.0
    # The slack keeps 0.7 * 10 = 7.000000000000001 from asking for an eighth sample.
    needed = min(max(math.ceil(tpr * known.size - 1e-9), 1), known.size)
    threshold = float(known[needed - 1])
    fpr = float(np.mean(unknown >= threshold)) if unknown.size else 0.0
    return threshold, fpr


def latency_summary(ms: Sequence[float]) -> dict[str, float]:
    """Count, mean and the 50th/95th/99th percentiles (numpy's linear interpolation).

        latency_summary([10, 20, 30, 40])   # -> {"n": 4, "mean": 25.0, "p50": 25.0, ...}

    All zeros for no samples.
    """
    values = np.asarray(ms, dtype=np.float64).ravel()
    if not values.size:
        return {"n": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"n": int(values.size), "mean": float(values.mean()),
            "p50": float(p50), "p95": float(p95), "p99": float(p99)}


def confused_pairs(truth: Sequence[str], predicted: Sequence[str],
                   top: int = 10) -> list[dict[str, Any]]:
    """The most frequent (true, predicted) mistakes, most frequent first.

        confused_pairs(["K-1", "K-1", "K-2"], ["K-2", "K-2", "K-2"])
        # -> [{"true": "K-1", "predicted": "K-2", "count": 2}]

    Ties are ordered by the codes, so reports are stable; empty without mistakes.
    """
    mistakes = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    ranked = sorted(mistakes.items(), key=lambda item: (-item[1], item[0]))
    return [{"true": t, "predicted": p, "count": n} for (t, p), n in ranked[:top]]


def worst_classes(truth: Sequence[str], predicted: Sequence[str],
                  top: int = 10) -> list[dict[str, Any]]:
    """The true classes with the lowest accuracy (recall), worst first.

        worst_classes(["K-1", "K-1", "K-2"], ["K-2", "K-1", "K-2"])
        # -> [{"k_code": "K-1", "accuracy": 0.5, "support": 2},
        #     {"k_code": "K-2", "accuracy": 1.0, "support": 1}]

    Only classes that occur in ``truth``; equal accuracy puts more support first (the larger
    failure), then the code. Empty for no samples.
    """
    support: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for t, p in zip(truth, predicted, strict=True):
        support[t] += 1
        right[t] += t == p
    rows = [{"k_code": code, "accuracy": right[code] / n, "support": n}
            for code, n in support.items()]
    rows.sort(key=lambda row: (row["accuracy"], -row["support"], row["k_code"]))
    return rows[:top]
