"""The GPU session's PyTorch stand-in (``bench/standin.py``), run here on the CPU: the
traced detector and a timm classifier answer through the serving pipeline, and
``bench serve --standin`` reports them under their own label.

    python -m pytest tests/bench/test_standin.py -q

Small models at small sizes keep it quick; the GPU run uses YOLO11m 640 and
EfficientNetV2-S 384 with 5,000 classes (scripts/gpu/check.sh).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pillsnap.bench import serve, standin
from pillsnap.bench.__main__ import main as bench_main


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("standin")
    standin.write_detector(out, arch="yolo11n", size=320)
    return out


@pytest.fixture(scope="module")
def samples() -> serve.Samples:
    return serve.sample_photos(None, None)


def test_the_traced_detector_and_timm_classifier_answer_through_the_pipeline(
        folder: Path, samples: serve.Samples) -> None:
    assert json.loads((folder / standin.INFO_FILE).read_text()) == {
        "arch": "yolo11n", "image_size": 320, "anchors": 2100}
    pipe = standin.open_pipeline(folder, "cpu", classifier="test_efficientnet", classes=12,
                                 image_size=64, calibrate=samples.photos["combo"])
    assert (pipe.device, pipe.pipelines, pipe.io_bound) == ("cpu", ("single", "combo"), "off")
    det = pipe.recipe.detector
    assert det is not None and det.size == 320 and det.conf > 0
    before = pipe.model_seconds
    combo = pipe.predict(samples.photos["combo"], pipeline="combo", top_k=3)
    assert len(combo["pills"]) == standin.MAX_BOXES  # the calibrated threshold: 4 crops
    for pill in combo["pills"]:
        assert pill["top1"]["k_code"].startswith("K-0000")
        assert len(pill["candidates"]) == 3
    single = pipe.predict(samples.photos["single"], pipeline="single")
    assert len(single["pills"]) == 1  # the best box, classified
    assert pipe.model_seconds > before  # the modules' time is counted


def test_bench_serve_reports_the_standin_under_its_own_label(folder: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("targets:\n  measurement: {warmup_runs: 1, runs: 3}\n", encoding="utf-8")
    out = tmp_path / "serve.json"
    assert bench_main(["serve", "--standin", str(folder), "--device", "cpu", "--cfg", str(cfg),
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["engine"], result["device"]) == (standin.LABEL, "cpu")
    assert result["model_version"].startswith(standin.LABEL)
    assert {"PyTorch stand-in: classifier, one crop",
            "PyTorch stand-in in-process: single pipeline",
            "PyTorch stand-in in-process: combo pipeline"} <= set(result["latency_ms"])
    assert not any(name.startswith("ONNX Runtime") for name in result["latency_ms"])
    for split in result["model_share"].values():
        assert 0 < split["model_ms"] < split["answer_ms"]


def test_a_folder_without_the_detector_is_explained(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"python -m pillsnap\.bench standin --out"):
        standin.open_pipeline(tmp_path, "cpu")
