"""CPU mixed precision: fp32 by default, bf16 autocast when asked and the CPU has it natively."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pillsnap.config import PillsnapConfig
from pillsnap.config.schema import TrainConfig
from pillsnap.train.checkpoint import load_checkpoint
from pillsnap.train.classifier import train_classifier
from pillsnap.train.runtime import cpu_has_native_bf16, pick_precision

CPU = torch.device("cpu")


def test_auto_keeps_the_cpu_in_fp32(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO"):
        precision = pick_precision(TrainConfig(amp_dtype="auto"), CPU)
    assert precision.dtype is None and not precision.needs_scaler
    # auto on a CPU is fp32 by design: an INFO decision, not a WARNING fallback
    [record] = [r for r in caplog.records if "amp=fp32" in r.getMessage()]
    assert record.levelname == "INFO"
    assert record.getMessage().startswith("decision: amp=fp32 (no CUDA (cpu)")


def test_an_explicit_dtype_the_cpu_cannot_give_is_a_fallback(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO"):
        precision = pick_precision(TrainConfig(amp_dtype="fp16"), CPU)
    assert precision.dtype is None
    [record] = [r for r in caplog.records if "amp=fp32" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert "fallback: amp=fp32 (train.amp_dtype=fp16, but fp16 autocast needs CUDA" in \
        record.getMessage()


def test_bf16_on_the_cpu_follows_the_hardware(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO"):
        precision = pick_precision(TrainConfig(amp_dtype="bf16"), CPU)
    conv = torch.nn.Conv2d(3, 4, 3)
    with precision.autocast():
        out = conv(torch.randn(1, 3, 8, 8))
    if cpu_has_native_bf16():
        assert precision.dtype is torch.bfloat16 and not precision.needs_scaler
        assert "decision: amp=bf16 (train.amp_dtype=bf16 and this CPU has native bf16" in \
            caplog.text
        assert out.dtype is torch.bfloat16
    else:
        assert precision.dtype is None
        assert "fallback: amp=fp32 (train.amp_dtype=bf16, but cpu has no native bf16" in \
            caplog.text
        assert out.dtype is torch.float32


def test_a_bf16_cpu_run_trains_and_saves_fp32_weights(
        make_cfg: Callable[..., PillsnapConfig]) -> None:
    cfg = make_cfg("train.amp_dtype=bf16")
    metrics = train_classifier(cfg)
    run = Path(cfg.run.out_dir) / cfg.run.name
    log = (run / "train.log").read_text(encoding="utf-8")
    expected = "decision: amp=bf16" if cpu_has_native_bf16() else "fallback: amp=fp32"
    assert log.count(expected) == 1
    state = load_checkpoint(run / "last.pt")
    for weights in (state["model"], state["ema"]):
        floats = [t for t in weights.values() if t.is_floating_point()]
        assert floats and all(t.dtype is torch.float32 for t in floats)
    assert 0.0 <= metrics["top1"] <= 1.0 and metrics["val_loss"] == pytest.approx(
        metrics["val_loss"])  # finite: NaN != NaN
