"""A run killed with SIGKILL resumes from last.pt: epochs and steps continue, not restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
