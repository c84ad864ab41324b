"""Out-of-memory recovery: each CUDA OOM takes the next remedy, then a clear failure."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pillsnap.config import PillsnapConfig
from pillsnap.config.schema import OomConfig
from pillsnap.train import loop
from pillsnap.train.checkpoint import load_checkpoint
from pillsnap.train.classifier import train_classifier
from pillsnap.train.oom import OomPolicy, OutOfMemoryFailure, Settings


def test_policy_walks_the_steps_then_fails_with_advice() -> None:
    policy = OomPolicy(OomConfig(max_retries=10, min_batch=8))
    settings, seen = Settings(batch_size=64, grad_accum=1, fp16=False), []
    with pytest.raises(OutOfMemoryFailure, match=r"lower models\.classifier\.image_size"):
        while True:
            step, settings = policy.next(settings)
            seen.append((step, settings.batch_size, settings.grad_accum, settings.fp16))
    assert seen == [("empty_cache", 64, 1, False), ("force_fp16", 64, 1, True),
                    ("grad_accum", 32, 2, True),  # same effective batch, half the memory
                    ("halve_batch", 16, 2, True), ("halve_batch", 8, 2, True)]


def test_policy_skips_fp16_when_already_fp16_and_respects_max_retries() -> None:
    policy = OomPolicy(OomConfig(max_retries=2))
    start = Settings(batch_size=64, grad_accum=1, fp16=True)
    assert policy.next(start)[0] == "empty_cache"
    assert policy.next(start)[0] == "grad_accum"
    with pytest.raises(OutOfMemoryFailure, match="after 2 remedies"):
        policy.next(start)


def test_injected_ooms_walk_the_state_machine_and_training_finishes(
        make_cfg: Callable[..., PillsnapConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    real, failures = loop.train_step, {"left": 4}

    def flaky(*args: object, **kwargs: object) -> torch.Tensor:
        if failures["left"]:
            failures["left"] -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "train_step", flaky)
    cfg = make_cfg("train.batch_size=16", "logging.tensorboard=true")
    train_classifier(cfg)
    run = Path(cfg.run.out_dir) / cfg.run.name
    log = (run / "train.log").read_text(encoding="utf-8")
    steps = re.findall(r"fallback: oom=(\w+) \(retry (\d+): batch=(\d+) grad_accum=(\d+)", log)
    assert steps == [("empty_cache", "1", "16", "1"), ("force_fp16", "2", "16", "1"),
                     ("grad_accum", "3", "8", "2"), ("halve_batch", "4", "4", "2")]
    assert "fallback: oom.force_fp16=fp32 (CPU" in log  # what force_fp16 means without CUDA
    # grad_accum keeps the global batch (8 x 2), halve_batch does not: the lr follows once
    assert re.findall(r"decision: train\.lr=(\S+) \(sqrt rule: global batch (\d+)", log) == [
        ("0.0007071", "8")]
    state = load_checkpoint(run / "last.pt")
    assert state["settings"] == {"batch_size": 4, "grad_accum": 2, "fp16": True}
    assert state["step"] == 4  # 32 crops in batches of 4, two batches per optimiser step
    advice = (run / "advisor.json").read_text(encoding="utf-8")
    assert "train.batch_size=2" in advice
    assert list(run.glob("events.out.tfevents.*"))  # the oom/* scalars went to TensorBoard
