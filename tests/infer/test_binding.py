"""``serve.io_binding``: the bound and the plain ONNX Runtime calls give the same answers,
and ``auto`` keeps whichever its own timing found faster.

    python -m pytest tests/infer/test_binding.py -q

This machine has no GPU, so the bound tensors live in host memory here: the binding code
path (OrtValues in, outputs bound and copied back) runs for real, the transfer it saves on a
GPU does not exist. ``auto`` times the two ways only on a GPU (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from pillsnap.infer.binding import TRIAL_RUNS, Runner
from pillsnap.infer.pipeline import OnnxPipeline


@pytest.mark.parametrize("pipeline", ["single", "combo"])
def test_bound_calls_answer_exactly_as_plain_ones(many_export: Path,
                                                  pill_photos: dict[str, Path],
                                                  pipeline: str) -> None:
    plain = OnnxPipeline.open(many_export, io_binding="off")
    bound = OnnxPipeline.open(many_export, io_binding="on", warm=True)
    assert (plain.io_bound, bound.io_bound) == ("off", "on")
    for photo in pill_photos.values():
        data = photo.read_bytes()
        ours = bound.predict(data, pipeline=pipeline, top_k=3, with_outputs=True)
        theirs = plain.predict(data, pipeline=pipeline, top_k=3, with_outputs=True)
        assert ours["pills"], photo  # many_export: boxes on every photo
        np.testing.assert_array_equal(ours["logits"], theirs["logits"])
        np.testing.assert_array_equal(ours["features"], theirs["features"])
        for key in ("pills", "recommend_combo"):
            assert ours.get(key) == theirs.get(key)
    # a batch split over several classifier calls, bound: the same rows
    size = plain.recipe.crop.size
    crops = np.random.default_rng(0).integers(0, 255, (5, size, size, 3), dtype=np.uint8)
    bound.max_batch = 2
    np.testing.assert_array_equal(bound.classify(crops)[0], plain.classify(crops)[0])


def test_auto_on_the_cpu_binds_nothing_and_times_nothing(
        exported: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    pipe = OnnxPipeline.open(exported, io_binding="auto", warm=True)
    assert pipe.io_bound == "off"
    assert not [r for r in caplog.records if "serve.io_binding" in r.getMessage()]
    assert pipe.model_seconds > 0  # the warm-up ran each model


def test_the_trial_times_both_ways_on_the_real_session(exported: Path) -> None:
    pipe = OnnxPipeline.open(exported)
    feeds = {"images": np.zeros((1, 3, pipe.recipe.crop.size, pipe.recipe.crop.size), np.float32)}
    plain, bound = pipe.classifier.trial(["logits"], feeds)
    assert plain > 0 and bound > 0


class _Timed(Runner):
    """A runner whose trial reports given medians: the GPU's figures, which this machine
    cannot produce (the trial itself is tested above)."""

    def __init__(self, runner: Runner, medians: tuple[float, float]) -> None:
        super().__init__(runner.session, "auto")
        self.where = self.device = "cuda"
        self.medians = medians

    def trial(self, names: Sequence[str],
              feeds: Mapping[str, np.ndarray]) -> tuple[float, float]:
        return self.medians


@pytest.mark.parametrize(("medians", "kept"), [((5.0, 4.2), True), ((4.2, 5.0), False)])
def test_auto_on_a_gpu_keeps_the_faster_way_with_one_line(
        exported: Path, caplog: pytest.LogCaptureFixture, medians: tuple[float, float],
        kept: bool) -> None:
    caplog.set_level(logging.INFO)
    runner = _Timed(OnnxPipeline.open(exported).classifier, medians)
    runner.settle("classifier", ["logits"], {})
    assert runner.bound is kept
    lines = [r.getMessage() for r in caplog.records if "serve.io_binding" in r.getMessage()]
    way = "on" if kept else "off"
    assert lines == [f"decision: serve.io_binding[classifier]={way} (cuda: bound "
                     f"{medians[1]:.2f} ms against plain {medians[0]:.2f} ms, median of "
                     f"{TRIAL_RUNS} runs each)"]


def test_an_unknown_mode_is_refused(exported: Path) -> None:
    with pytest.raises(ValueError, match="choose one of auto, on, off"):
        OnnxPipeline.open(exported, io_binding="pinned")  # type: ignore[arg-type]
