"""The open-set threshold set on served crops: tar of the known validation photos pass.

    PYTHONPATH=python python -m pytest tests/export/test_open_set_calibration.py -q
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pillsnap.export.metadata import read_metadata
from pillsnap.export.open_set import calibrate_served, known_val_photos
from pillsnap.infer.pipeline import OnnxPipeline


def test_the_served_threshold_accepts_tar_of_known_photos(exported: Path,
                                                          trained: dict[str, Path],
                                                          tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(exported, export)
    before = json.loads(read_metadata(export / "classifier" / "model.onnx")["open_set"])
    root = trained["base"] / "aihub"
    updated = calibrate_served(export, trained["manifest"], root, photos=100, min_photos=5)
    assert updated is not None and updated["calibration_photos"] == 16  # 4 drugs x 4 photos
    assert updated["thresholds_training"] == before["thresholds"]
    assert updated["threshold"] == updated["thresholds"]["mahalanobis"]
    saved = json.loads(read_metadata(export / "classifier" / "model.onnx")["open_set"])
    assert saved == updated
    pipe = OnnxPipeline.open(export)  # what a server loads now
    photos = known_val_photos(trained["manifest"], root, pipe.bundle.k_codes, 100)
    answers = [pipe.predict(p.read_bytes(), pipeline="single")["pills"][0] for p in photos]
    scores = sorted(a["open_set_score"] for a in answers)
    # at least 95% of 16 must pass: 15.2, so all 16; the threshold is the lowest score
    assert all(not a["unknown"] for a in answers)
    assert updated["threshold"] == pytest.approx(scores[0], abs=1e-3)


def test_too_few_photos_keep_the_training_threshold(exported: Path, trained: dict[str, Path],
                                                    tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    export = tmp_path / "export"
    shutil.copytree(exported, export)
    before = read_metadata(export / "classifier" / "model.onnx")["open_set"]
    assert calibrate_served(export, trained["manifest"], trained["base"] / "aihub",
                            photos=100) is None  # 16 photos: fewer than 20
    assert read_metadata(export / "classifier" / "model.onnx")["open_set"] == before
    assert "fallback: open_set.threshold=training's (16 served" in caplog.text
