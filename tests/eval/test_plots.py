"""Each evaluation plot writes a PNG that opens; without matplotlib they say so and skip."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pillsnap.eval import metrics, plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

rng = np.random.default_rng(0)
CONFIDENCE = rng.uniform(0, 1, 200)
CORRECT = rng.uniform(0, 1, 200) < CONFIDENCE  # roughly calibrated
KNOWN, UNKNOWN = rng.normal(0.8, 0.1, 150), rng.normal(0.4, 0.15, 50)


def assert_png(path: Path | None, expected: Path) -> None:
    assert path == expected
    assert expected.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(expected) as image:
        image.verify()
    with Image.open(expected) as image:
        assert image.format == "PNG" and image.size == (500, 400)


def test_risk_coverage_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    curves = {"top-1": metrics.risk_coverage(CONFIDENCE, CORRECT),
              "empty": metrics.risk_coverage([], [])}
    path = tmp_path / "plots" / "risk_coverage.png"  # the folder is made on demand
    assert_png(plots.plot_risk_coverage(curves, path), path)


def test_reliability_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "reliability.png"
    assert_png(plots.plot_reliability(metrics.calibration(CONFIDENCE, CORRECT), path), path)
    empty = tmp_path / "reliability_empty.png"
    assert_png(plots.plot_reliability(metrics.calibration([], []), empty), empty)


def test_open_set_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    threshold, _ = metrics.fpr_at_tpr(KNOWN, UNKNOWN)
    path = tmp_path / "open_set.png"
    assert_png(plots.plot_open_set(KNOWN, UNKNOWN, threshold, str(path)), path)
    # No unknown samples and no usable threshold still draw.
    empty = tmp_path / "open_set_empty.png"
    assert_png(plots.plot_open_set(KNOWN, [], float("inf"), empty), empty)


def test_without_matplotlib_plots_are_skipped_with_one_decision_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A None entry in sys.modules makes the import raise ImportError, as on a serve install.
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    caplog.set_level(logging.INFO, logger="pillsnap.eval.plots")
    path = tmp_path / "open_set.png"
    assert plots.plot_open_set(KNOWN, UNKNOWN, 0.5, path) is None
    assert not path.exists()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["decision: plots=skipped (matplotlib is not installed)"]
    assert caplog.records[0].levelno == logging.INFO
    assert plots.plot_reliability(metrics.calibration([], []), path) is None
    assert plots.plot_risk_coverage({}, path) is None
