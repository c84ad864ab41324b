"""Mid-epoch checkpoints: when they are written, what they hold, when a position is refused.

    PYTHONPATH=python python -m pytest tests/train/test_midepoch.py -q

The kill-and-resume proof (a SIGKILLed run resumes to the same losses and weights) is in
test_resume.py; the DDP one in test_ddp.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pillsnap.config import PillsnapConfig, load_config
from pillsnap.train import midepoch
from pillsnap.train.checkpoint import load_checkpoint
from pillsnap.train.classifier import train_classifier
from pillsnap.train.distributed import Dist
from pillsnap.train.run_state import Position, check_position


@pytest.mark.parametrize("trigger", ["train.checkpoint_every_steps=1",
                                     "train.checkpoint_every_minutes=1e-9"])
def test_checkpoints_fall_after_optimiser_steps_inside_the_epoch(
        trigger: str, make_cfg: Callable[..., PillsnapConfig],
        monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[dict[str, Any]] = []
    real = midepoch.save_atomic

    def record(state: dict[str, Any], path: Path) -> Path:
        saved.append(state["position"])
        return real(state, path)

    monkeypatch.setattr(midepoch, "save_atomic", record)
    # 32 crops in batches of 2, three per optimiser step: steps end after batches 3, 6, ...
    # 15 and 16 (the epoch's last, short step, whose last.pt is the end-of-epoch one)
    cfg = make_cfg("train.batch_size=2", "train.grad_accum=3", trigger,
                   "models.classifier.open_set.fit_samples=0")
    train_classifier(cfg)
    assert [p["batch"] for p in saved] == [3, 6, 9, 12, 15]
    assert {(p["epoch"], p["batches"], p["batch_size"], p["grad_accum"], p["world"])
            for p in saved} == {(0, 16, 2, 3, 1)}
    run = Path(cfg.run.out_dir) / cfg.run.name
    log = (run / "train.log").read_text(encoding="utf-8")
    assert log.count("mid-epoch checkpoint: last.pt at epoch 0 batch ") == 5
    assert "mid-epoch checkpoint: last.pt at epoch 0 batch 15/16, step 5 (" in log
    last = load_checkpoint(run / "last.pt")  # the end of the epoch wrote over them
    assert last["position"] is None and last["epoch"] == 0 and last["step"] == 6
    assert len(last["rng"]) == 1


def test_mid_epoch_checkpoints_are_off_at_zero(make_cfg: Callable[..., PillsnapConfig],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(midepoch, "save_atomic", lambda *a: pytest.fail("no save expected"))
    cfg = make_cfg("train.batch_size=2", "train.checkpoint_every_minutes=0",
                   "models.classifier.open_set.fit_samples=0")
    train_classifier(cfg)


def test_the_clock_counts_from_the_last_write_and_steps_count_exactly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(midepoch.time, "monotonic", lambda: now[0])
    cfg = load_config(None, ["train.checkpoint_every_minutes=20"], env_file=None, environ={})
    clock = midepoch.MidEpochCheckpoints(cfg, Dist())
    now[0] += 20 * 60 - 1
    assert not clock.due(7)
    now[0] += 1
    assert clock.due(8)
    clock.written()  # an end-of-epoch last.pt counts as well
    assert not clock.due(9)
    cfg.train.checkpoint_every_minutes, cfg.train.checkpoint_every_steps = 0, 4
    steps = midepoch.MidEpochCheckpoints(cfg, Dist())
    assert [n for n in range(1, 13) if steps.due(n)] == [4, 8, 12]


def _session(position: Position, *, batches: int, world: int) -> Any:
    return SimpleNamespace(resume_at=position, train_loader=[None] * batches,
                           settings=SimpleNamespace(batch_size=2, grad_accum=2),
                           dist=Dist(rank=0, world=world))


def test_a_position_counted_another_way_restarts_the_epoch_with_one_line(
        caplog: pytest.LogCaptureFixture) -> None:
    position = Position(epoch=3, batch=6, batches=16, batch_size=2, grad_accum=2, world=1)
    same = _session(position, batches=16, world=1)
    check_position(same)
    assert same.resume_at == position
    caplog.set_level(logging.INFO)
    # two processes now: each rank's shard is half as long, batch 6 is another sample
    other = _session(position, batches=8, world=2)
    check_position(other)
    assert other.resume_at is None  # s.epoch stays 3: that epoch runs from batch 0
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["fallback: resume.position=epoch 3 batch 0 (cannot continue at batch 6: "
                     "it was taken at 16 batches of 2 x 2 accumulated on 1 processes; this run "
                     "has 8 of 2 x 2 on 2; the epoch restarts)"]
