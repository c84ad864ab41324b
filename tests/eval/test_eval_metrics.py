"""The evaluation numbers on cases small enough to count by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pillsnap.eval import metrics
from pillsnap.export import map50 as map50_module

# Three pills in a row; the detector finds the first twice (one loose box with the higher
# score, one exact duplicate), the second loosely, misses the third and adds an extra box.
TRUTH = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], dtype=np.float32)
BOXES = np.array([[0, 0, 10, 8.25],   # pill 0, IoU 0.825, best score
                  [20, 0, 30, 7.25],  # pill 1, IoU 0.725
                  [0, 0, 10, 10],     # pill 0 again, IoU 1.0: a duplicate by score
                  [60, 0, 70, 10]],   # nothing there
                 dtype=np.float32)
SCORES = np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32)


def test_match_pills_is_greedy_by_score_and_uses_each_pill_once() -> None:
    assert metrics.match_pills(BOXES, SCORES, TRUTH).tolist() == [0, 1, -1, -1]
    assert metrics.match_pills(BOXES, SCORES, TRUTH, iou=0.75).tolist() == [0, -1, -1, -1]
    # Above 0.825 the loose box fails, so the duplicate gets pill 0.
    assert metrics.match_pills(BOXES, SCORES, TRUTH, iou=0.85).tolist() == [-1, -1, 0, -1]
    # Input order does not matter, only the scores.
    order = [3, 2, 1, 0]
    assert metrics.match_pills(BOXES[order], SCORES[order], TRUTH).tolist() == [-1, -1, 1, 0]


def test_match_pills_takes_the_unused_pill_with_the_highest_iou() -> None:
    truth = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float32)
    boxes = np.array([[4, 0, 14, 10], [0, 0, 10, 10]], dtype=np.float32)
    # The first box overlaps both (IoU 60/140 and 90/110); it takes the second pill.
    assert metrics.match_pills(boxes, [0.9, 0.8], truth, iou=0.3).tolist() == [1, 0]
    # With the second pill gone it would take the first: the lower-scored box then misses.
    assert metrics.match_pills(boxes, [0.9, 0.8], truth[:1], iou=0.3).tolist() == [0, -1]


def test_map50_true_positives_are_the_matches() -> None:
    for iou in (0.5, 0.75, 0.85):
        hits = map50_module._true_positives(BOXES, SCORES, TRUTH, iou)
        assert hits.tolist() == (metrics.match_pills(BOXES, SCORES, TRUTH, iou) >= 0).tolist()
    assert metrics.map50 is map50_module.map50


def test_map50_and_map_range_by_hand() -> None:
    predictions, truths = [(BOXES, SCORES)], [TRUTH]
    # IoU 0.5-0.7 (5 thresholds): hits [1, 1, 0, 0] of 3 pills -> AP = 1/3 + 1/3.
    assert metrics.map50(predictions, truths) == pytest.approx(2 / 3)
    # 0.75, 0.8: hits [1, 0, 0, 0] -> 1/3; 0.85-0.95: hits [0, 0, 1, 0] -> 1/3 recall at
    # precision 1/3 -> 1/9.
    assert metrics.map50(predictions, truths, threshold=0.8) == pytest.approx(1 / 3)
    assert metrics.map50(predictions, truths, threshold=0.9) == pytest.approx(1 / 9)
    expected = (5 * 2 / 3 + 2 * 1 / 3 + 3 * 1 / 9) / 10
    assert metrics.map_range(predictions, truths) == pytest.approx(expected)
    assert metrics.map_range(predictions, truths, thresholds=[0.5, 0.9]) == pytest.approx(
        (2 / 3 + 1 / 9) / 2)
    assert metrics.IOU_THRESHOLDS.tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
                                               0.9, 0.95]


def test_detection_metrics_on_empty_inputs() -> None:
    none = np.zeros((0, 4), dtype=np.float32)
    assert metrics.match_pills(none, np.zeros(0), TRUTH).tolist() == []
    assert metrics.match_pills(BOXES, SCORES, none).tolist() == [-1, -1, -1, -1]
    assert metrics.map50([(BOXES, SCORES)], [none]) == 0.0
    assert metrics.map_range([(none, np.zeros(0))], [TRUTH]) == 0.0
    assert metrics.map_range([], []) == 0.0
    assert metrics.map_range([(BOXES, SCORES)], [TRUTH], thresholds=[]) == 0.0


def test_top_k_accuracy() -> None:
    ranked = [["A", "B", "C"], ["B", "A", "C"], ["C", "B", "A"]]
    truth = ["A", "A", "A"]
    assert metrics.top_k_accuracy(ranked, truth, k=1) == pytest.approx(1 / 3)
    assert metrics.top_k_accuracy(ranked, truth, k=2) == pytest.approx(2 / 3)
    assert metrics.top_k_accuracy(ranked, truth, k=5) == 1.0
    assert metrics.top_k_accuracy([], [], k=1) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        metrics.top_k_accuracy(ranked, truth, k=0)


def test_risk_coverage_on_five_samples() -> None:
    confidence = [0.6, 0.9, 0.3, 0.8, 0.8]  # unsorted on purpose
    correct = [1, 1, 0, 1, 0]
    curve = metrics.risk_coverage(confidence, correct)
    # Sorted: 0.9 ok, 0.8 ok, 0.8 wrong, 0.6 ok, 0.3 wrong; a tie is accepted whole.
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.6, 0.3]
    assert curve["coverage"].tolist() == pytest.approx([0.2, 0.6, 0.8, 1.0])
    assert curve["accuracy"].tolist() == pytest.approx([1.0, 2 / 3, 3 / 4, 3 / 5])


def test_threshold_for_accuracy_takes_the_lowest_threshold_reaching_the_target() -> None:
    confidence, correct = [0.6, 0.9, 0.3, 0.8, 0.8], [1, 1, 0, 1, 0]
    # Accuracy is not monotone: 0.8 gives 2/3 but 0.6 gives exactly 3/4 again.
    assert metrics.threshold_for_accuracy(confidence, correct, target=0.75) == (0.6, 0.8)
    assert metrics.threshold_for_accuracy(confidence, correct, target=0.99) == (0.9, 0.2)
    assert metrics.threshold_for_accuracy(confidence, correct, target=0.6) == (0.3, 1.0)
    assert metrics.threshold_for_accuracy([0.9, 0.5], [0, 0]) is None
    # 99 of 100 right meets 0.99 exactly.
    hundred = metrics.threshold_for_accuracy(np.full(100, 0.5), [1] * 99 + [0])
    assert hundred == (0.5, 1.0)


def test_classification_metrics_on_empty_inputs() -> None:
    curve = metrics.risk_coverage([], [])
    assert all(curve[key].size == 0 for key in ("threshold", "coverage", "accuracy"))
    assert metrics.threshold_for_accuracy([], []) is None
    calib = metrics.calibration([], [], bins=3)
    assert calib["ece"] == 0.0 and calib["count"] == [0, 0, 0]
    assert calib["accuracy"] == [None, None, None]
    with pytest.raises(ValueError, match="confidences"):
        metrics.risk_coverage([0.5], [])


def test_calibration_by_hand() -> None:
    confidence = [0.9, 0.8, 0.6, 0.2, 0.0]
    correct = [1, 0, 1, 0, 1]
    calib = metrics.calibration(confidence, correct, bins=4)
    # Bins (0, .25], (.25, .5], (.5, .75], (.75, 1]; 0.0 falls in none but counts in the
    # total: |0 - 0.2| * 1/5 + |1 - 0.6| * 1/5 + |0.5 - 0.85| * 2/5 = 0.04 + 0.08 + 0.14.
    assert calib["ece"] == pytest.approx(0.26)
    assert calib["count"] == [1, 0, 1, 2]
    assert calib["accuracy"] == [0.0, None, 1.0, 0.5]
    assert calib["confidence"] == pytest.approx([0.2, None, 0.6, 0.85])
    assert calib["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # A bin holds its upper edge: 0.5 is in (0, 0.5].
    assert metrics.calibration([0.5], [1], bins=2)["count"] == [1, 0]
    assert metrics.calibration([0.5], [1], bins=2)["ece"] == pytest.approx(0.5)


def test_calibration_agrees_with_the_training_ece() -> None:
    torch = pytest.importorskip("torch")
    from pillsnap.train.calibrate import expected_calibration_error

    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(400, 6, generator=generator) * 2
    labels = torch.randint(0, 6, (400,), generator=generator)
    confidence, preds = logits.softmax(1).max(1)
    ours = metrics.calibration(confidence.numpy(), (preds == labels).numpy())["ece"]
    assert ours == pytest.approx(expected_calibration_error(logits, labels), abs=1e-5)


def test_auroc_counts_ties_half() -> None:
    # Pairs: (0.9, 0.7) 1, (0.9, 0.2) 1, (0.7, 0.7) 0.5, (0.7, 0.2) 1.
    assert metrics.auroc([0.9, 0.7], [0.7, 0.2]) == pytest.approx(3.5 / 4)
    assert metrics.auroc([0.9, 0.8], [0.1]) == 1.0
    assert metrics.auroc([0.1], [0.9, 0.8]) == 0.0
    assert metrics.auroc([0.5, 0.5], [0.5]) == 0.5
    assert metrics.auroc([], [0.5]) == 0.5 and metrics.auroc([0.5], []) == 0.5


def test_auroc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    known, unknown = rng.integers(0, 5, 30), rng.integers(0, 5, 20)  # many ties
    pairs = (known[:, None] > unknown[None, :]) + 0.5 * (known[:, None] == unknown[None, :])
    assert metrics.auroc(known, unknown) == pytest.approx(pairs.mean())


def test_fpr_at_tpr() -> None:
    known = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    unknown = [0.1, 0.25, 0.5, 0.05]
    # 8 of 10 known accepted at >= 0.2, which lets 0.25 and 0.5 through.
    assert metrics.fpr_at_tpr(known, unknown, tpr=0.8) == (0.2, 0.5)
    # 0.7 * 10 is 7.000000000000001 in floating point: still 7 samples, threshold 0.3.
    assert metrics.fpr_at_tpr(known, unknown, tpr=0.7) == (0.3, 0.25)
    assert metrics.fpr_at_tpr(known, unknown, tpr=1.0) == (0.05, 1.0)
    # Ties: accepting 2 of 4 takes all three 0.5s (at least tpr).
    assert metrics.fpr_at_tpr([0.5, 0.1, 0.5, 0.5], [0.4], tpr=0.5) == (0.5, 0.0)
    assert metrics.fpr_at_tpr(known, [], tpr=0.95) == (0.05, 0.0)
    threshold, fpr = metrics.fpr_at_tpr([], unknown)
    assert math.isinf(threshold) and fpr == 0.0
    with pytest.raises(ValueError, match="tpr"):
        metrics.fpr_at_tpr(known, unknown, tpr=1.5)


def test_latency_summary_uses_linear_percentiles() -> None:
    summary = metrics.latency_summary([50, 10, 40, 20, 30])
    # Sorted 10..50; p95 sits at position 0.95 * 4 = 3.8: 40 + 0.8 * 10.
    assert summary == pytest.approx({"n": 5, "mean": 30.0, "p50": 30.0, "p95": 48.0,
                                     "p99": 49.6})
    assert summary["n"] == 5 and isinstance(summary["n"], int)
    assert metrics.latency_summary([]) == {"n": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0,
                                           "p99": 0.0}


def test_confused_pairs_and_worst_classes() -> None:
    truth = ["A", "A", "A", "B", "B", "C"]
    predicted = ["B", "B", "C", "A", "B", "C"]
    assert metrics.confused_pairs(truth, predicted) == [
        {"true": "A", "predicted": "B", "count": 2},
        {"true": "A", "predicted": "C", "count": 1},
        {"true": "B", "predicted": "A", "count": 1}]
    assert len(metrics.confused_pairs(truth, predicted, top=2)) == 2
    assert metrics.worst_classes(truth, predicted) == [
        {"k_code": "A", "accuracy": 0.0, "support": 3},
        {"k_code": "B", "accuracy": 0.5, "support": 2},
        {"k_code": "C", "accuracy": 1.0, "support": 1}]
    # Equal accuracy: the class with more support is the larger failure.
    worst = metrics.worst_classes(["A", "B", "B"], ["x", "x", "x"], top=1)
    assert worst == [{"k_code": "B", "accuracy": 0.0, "support": 2}]
    assert metrics.confused_pairs([], []) == [] and metrics.worst_classes([], []) == []
    assert metrics.confused_pairs(["A"], ["A"]) == []
