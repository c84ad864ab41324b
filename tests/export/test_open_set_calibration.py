"""The open-set threshold set on served crops: tar of the known validation pills pass, single
and combination photos alike.

    PYTHONPATH=python python -m pytest tests/export/test_open_set_calibration.py -q
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from pillsnap.contract import decide, ops
from pillsnap.contract.photo import open_photo
from pillsnap.export.open_set import calibrate_served, known_val_photos, served_pills
from pillsnap.infer.pipeline import OnnxPipeline


def test_the_served_threshold_accepts_tar_of_known_photos(exported: Path,
                                                          trained: dict[str, Path]) -> None:
    pipe = OnnxPipeline.open(exported)
    root = trained["base"] / "aihub"
    before = pipe.recipe.open_set
    assert before is not None
    done = calibrate_served(pipe, trained["manifest"], root, photos=100, min_pills=5)
    assert done is not None and done.gallery is not None
    recipe = done.recipe
    assert recipe.open_set is not None
    # the served spread: how far the served pills lie from their class means, on average
    _, features, labels = served_pills(pipe, known_val_photos(
        trained["manifest"], root, recipe.k_codes, 100))
    g = done.gallery.whitened(features)
    assert done.gallery.spread == pytest.approx(
        float(((g - done.gallery.means[labels]) ** 2).sum(1).mean()), rel=1e-6)
    rule = recipe.open_set
    # 4 drugs x 4 single photos; the untrained detector boxes none of the combinations' pills
    assert rule.samples == 16 and rule.fitted_on.startswith("served validation photos")
    assert rule.threshold == rule.thresholds["mahalanobis"] and rule.tar == before.tar
    assert recipe.replace(open_set=before) == pipe.recipe  # nothing else changed
    pipe.recipe = recipe
    photos = [p for p in known_val_photos(trained["manifest"], root, recipe.k_codes, 100)
              if p.kind == "single"]
    answers = [pipe.predict(p.path.read_bytes(), pipeline="single")["pills"][0] for p in photos]
    scores = sorted(a["open_set_score"] for a in answers)
    # at least 95% of 16 must pass: 15.2, so all 16; the threshold is the lowest score
    assert all(not a["unknown"] for a in answers)
    assert rule.threshold == pytest.approx(scores[0], abs=1e-3)


def test_too_few_pills_keep_the_training_threshold(exported: Path, trained: dict[str, Path],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    pipe = OnnxPipeline.open(exported)
    assert calibrate_served(pipe, trained["manifest"], trained["base"] / "aihub",
                            photos=100) is None  # 16 pills: fewer than 20
    assert "fallback: open_set.threshold=training's (16 served validation pills" in caplog.text


class _LabelledBoxes:
    """A detector that reports each photo's labelled boxes (set before every call): the
    pipeline's matching of boxes to pills is what is under test, not the tiny detector."""

    def __init__(self) -> None:
        self.where, self.bound, self.busy_s = "cpu", False, 0.0
        self.outputs = ["output0"]
        self.output = np.zeros((1, 5, 0), dtype=np.float32)

    def show(self, boxes: np.ndarray, width: int, height: int, size: int) -> None:
        placement = ops.letterbox(np.zeros((height, width, 3), np.uint8), size)[1]
        xyxy = boxes * placement.scale + [placement.pad_x, placement.pad_y] * 2
        cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
        w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
        self.output = np.stack([cx, cy, w, h, np.full(len(boxes), 0.9)])[None].astype(np.float32)

    def run(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [self.output]

    def settle(self, model: str, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> None:
        """Nothing to settle."""


def test_combination_photos_count_each_matched_pill_of_a_known_drug(
        exported: Path, trained: dict[str, Path]) -> None:
    """Each combination photo's boxes are matched to its labelled pills (IoU 0.5); every
    matched pill of a trained drug is one more calibration sample, with its own label."""
    base = OnnxPipeline.open(exported)
    detector = _LabelledBoxes()
    pipe = OnnxPipeline(base.bundle, runners=(base.classifier, detector))
    root = trained["base"] / "aihub"
    photos = [p for p in known_val_photos(trained["manifest"], root, pipe.recipe.k_codes, 100)
              if p.kind == "combo"]
    assert photos
    expected = []
    for photo in photos:
        found = open_photo(photo.path.read_bytes())
        assert pipe.recipe.detector is not None
        detector.show(photo.boxes, found.width, found.height, pipe.recipe.detector.size)
        logits, features, labels = served_pills(pipe, [photo])
        assert [pipe.recipe.k_codes[i] for i in labels] == list(photo.k_codes)
        crops = found.crops(ops.box_regions(photo.boxes, found.width, found.height,
                                            pipe.recipe.crop.margin),
                            size=pipe.recipe.crop.size, short_side=pipe.recipe.crop.short_side)
        direct = pipe.classify(crops)[0]
        # the same crops, to the rounding of the boxes' trip through the letterbox
        np.testing.assert_allclose(logits, direct, rtol=1e-3, atol=1e-3)
        expected.append(decide.scores(logits, features, recipe=pipe.recipe,
                                      gallery=pipe.gallery)["mahalanobis"])
    assert sum(len(e) for e in expected) == sum(len(p.k_codes) for p in photos)
