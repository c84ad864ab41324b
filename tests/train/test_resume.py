"""A run killed with SIGKILL resumes from last.pt: epochs and steps continue, not restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pillsnap.child import Child
from pillsnap.train.checkpoint import load_checkpoint


def _train(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pillsnap.train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_mid_run_then_resume_last_continues(tiny_args: list[str], in_tmp: Path) -> None:
    args = tiny_args
    last = in_tmp / "runs" / "t" / "last.pt"
    proc = _train([*args, "train.epochs=50"], in_tmp)
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert last.exists(), proc.communicate()[0] if proc.poll() is not None else "no last.pt"
    time.sleep(0.3)  # well into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = load_checkpoint(last)  # intact despite the kill: atomic writes
    assert before["epoch"] < 49
    done = _train([*args, f"train.epochs={before['epoch'] + 3}", "train.resume=last"], in_tmp)
    out = done.communicate(timeout=300)[0]
    assert done.returncode == 0, out
    after = load_checkpoint(last)
    assert after["epoch"] == before["epoch"] + 2
    assert after["step"] == before["step"] + 2 * 4  # two more epochs of 4 steps each
    log = (in_tmp / "runs" / "t" / "train.log").read_text(encoding="utf-8")
    assert f"(continuing at epoch {before['epoch'] + 1}, step {before['step']})" in log
    assert f"step {before['step'] + 1} epoch {before['epoch'] + 1} " in log


# --------------------------------------------------------------------- mid-epoch checkpoints

# 32 train crops in batches of 2, two batches per optimiser step: 16 batches and 8 steps an
# epoch; last.pt every 3 steps lands mid-epoch (batches 6 and 12 of epoch 0, 2 and 8 of epoch
# 1, ...); a step line every 2 steps, so a checkpoint falls between step lines and the
# resumed run must carry the window's sums. Dropout and drop-path are on (the defaults): the
# torch random state must come back too.
MID_EPOCH = ["train.epochs=2", "train.batch_size=2", "train.grad_accum=2",
             "train.checkpoint_every_steps=3", "logging.log_every_steps=2",
             "run.deterministic=true", "models.classifier.open_set.fit_samples=0"]
STEP_LINE = re.compile(r"step (\d+) epoch (\d+) loss=(\S+) lr=(\S+)")


def _child(args: list[str], cwd: Path, log: Path) -> Child:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return Child.start([sys.executable, "-m", "pillsnap.train", *args], name="the trainer",
                       log=log, env=env, cwd=cwd)


def _finish(child: Child, timeout_s: float = 300) -> None:
    code = child.process.wait(timeout_s)
    assert code == 0, child.log_tail(40)


def _steps(log: str) -> list[tuple[str, ...]]:
    """(step, epoch, loss, lr) of each step line: the numbers, not the timings."""
    return [m.groups() for m in STEP_LINE.finditer(log)]


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_losses_and_weights(
        tiny_args: list[str], in_tmp: Path) -> None:
    whole = _child([*tiny_args, *MID_EPOCH, "run.name=whole"], in_tmp, in_tmp / "whole.out")
    _finish(whole)
    args = [*tiny_args, *MID_EPOCH, "run.name=killed"]
    run = in_tmp / "runs" / "killed"
    killed = _child(args, in_tmp, in_tmp / "killed.out")
    killed.wait_for_output(r"mid-epoch checkpoint: last\.pt at epoch 0 batch 6/16, step 3 "
                           r"\(\d+\.\d+ s\)", timeout_s=240, interval_s=0.01)
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait()
    assert "training done" not in killed.log_text()
    saved = load_checkpoint(run / "last.pt")
    position = saved["position"]
    assert position is not None, "the kill came after the epoch's end; the test needs a " \
                                 "mid-epoch last.pt"
    assert position["batch"] % 2 == 0  # after an optimiser step, never mid-accumulation
    assert (position["batches"], position["batch_size"], position["grad_accum"],
            position["world"]) == (16, 2, 2, 1)
    assert len(saved["rng"]) == 1 and {"python", "numpy", "torch"} <= saved["rng"][0].keys()

    resumed = _child([*args, "train.resume=last"], in_tmp, in_tmp / "resumed.out")
    _finish(resumed)
    log = resumed.log_text()
    where = f"epoch {position['epoch']} batch {position['batch']}/16, step {saved['step']}"
    assert f"decision: resume={run / 'last.pt'} (continuing at {where})" in log
    assert "fallback:" not in log.split("decision: resume=")[1]  # nothing restarted

    # The step lines after the resume point are the uninterrupted run's, to the digit, and
    # so is the last evaluation.
    reference = _steps(whole.log_text())
    after = _steps(log)
    assert after and after == [s for s in reference if int(s[0]) > saved["step"]]
    eval_line = re.compile(r"eval epoch 1: .*")
    assert eval_line.search(log)[0] == eval_line.search(whole.log_text())[0]  # type: ignore[index]
    # Final weights, EMA and optimiser state: bit for bit (CPU, deterministic mode).
    a = load_checkpoint(in_tmp / "runs" / "whole" / "last.pt")
    b = load_checkpoint(run / "last.pt")
    assert a["step"] == b["step"] == 16
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(),
                      strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
