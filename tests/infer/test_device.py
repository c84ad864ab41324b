"""``serve.device``: the providers asked for, and the one line when this machine lacks them.

    PYTHONPATH=python python -m pytest tests/infer/test_device.py -q

This machine's ONNX Runtime has only the CPU provider, so the GPU cases are the fallbacks a
user without ``onnxruntime-gpu`` (or without a GPU) meets; ``available=`` shows the choice a
GPU build would make.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pillsnap.infer.device import CPU, CUDA, TENSORRT, providers_for
from pillsnap.infer.pipeline import OnnxPipeline


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if "serve.device=" in r.getMessage()]


def test_a_gpu_build_gets_the_providers_asked_for(caplog: pytest.LogCaptureFixture) -> None:
    gpu = [TENSORRT, CUDA, CPU]
    caplog.set_level(logging.INFO)
    assert providers_for("cpu", gpu) == [CPU]
    assert providers_for("cuda", gpu) == [CUDA, CPU]
    assert providers_for("auto", gpu) == [CUDA, CPU]  # TensorRT only when asked: slow start
    trt = providers_for("tensorrt", gpu)
    assert trt[0][0] == TENSORRT and trt[0][1]["trt_fp16_enable"] and trt[1:] == [CUDA, CPU]
    assert _lines(caplog) == []  # nothing fell back, nothing to say


def test_what_is_missing_falls_back_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert providers_for("cuda", [CPU]) == [CPU]
    assert providers_for("tensorrt", [CUDA, CPU]) == [CUDA, CPU]
    assert providers_for("auto", [CPU]) == [CPU]
    lines = _lines(caplog)
    assert [level for level, _ in lines] == [logging.WARNING, logging.WARNING, logging.INFO]
    assert lines[0][1].startswith("fallback: serve.device=cpu (asked for cuda;")
    assert "no tensorrt provider" in lines[1][1] and "onnxruntime-gpu" in lines[1][1]
    assert lines[2][1].startswith("decision: serve.device=cpu (asked for auto;")
    with pytest.raises(ValueError, match="choose one of auto, cpu, cuda, tensorrt"):
        providers_for("gpu", [CPU])


def test_the_pipeline_asked_for_cuda_runs_on_this_cpu_and_answers(
        exported: Path, pill_photos: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    pipe = OnnxPipeline.open(exported, device="cuda")  # this machine's real ONNX Runtime
    assert pipe.device == "cpu"
    assert [level for level, _ in _lines(caplog)] == [logging.WARNING]
    answer = pipe.predict(pill_photos["single"].read_bytes())
    assert answer["pills"] and answer["pills"][0]["top1"]["k_code"]
