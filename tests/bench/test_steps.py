"""The training benchmark's step windows: each window's throughput, a slow one found, and
the profiler run over a normal window and over the one after the first slow window.

    python -m pytest tests/bench/test_steps.py -q

A real loop stands in for training: a little real matrix work (what the profiler must
show) and a wait per step, four times longer in the slow stretch; what is checked is what
the recorder sees of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pillsnap.bench.steps import Recorder

WINDOW = 4


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Matrix work on one thread: waking a second OpenMP thread after each wait costs 10 ms
    now and then on a small VM, a jitter that would blur the windows being told apart."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(recorder: Recorder, epoch: int, steps: int, slow: range) -> int:
    """A loop like the trainer's over the recorder's batches; returns the batches seen. A
    step is a little matrix work and a 25 ms wait (a GPU step, as the host sees it); a slow
    step waits 100 ms: far enough apart that a loaded machine's jitter cannot blur them."""
    seen = 0
    weights = torch.randn(64, 64)  # the same work every step (iterating it drifts in cost)
    for i, batch in enumerate(recorder.wrap(range(steps), epoch)):
        assert batch == i  # the batches themselves pass through unchanged, in order
        torch.tanh(weights @ weights)
        time.sleep(0.1 if i in slow else 0.025)
        seen += 1
    return seen


def test_windows_find_the_slow_stretch_and_profile_it(tmp_path: Path) -> None:
    recorder = Recorder(torch.device("cpu"), batch_size=8, window=WINDOW,
                        profile_dir=tmp_path / "profiles")
    try:
        # epoch 1: 12 windows, the 8th and 9th slow; epoch 2: 2 windows and a partial one
        assert _train(recorder, 1, 12 * WINDOW, range(7 * WINDOW, 9 * WINDOW)) == 48
        assert _train(recorder, 2, 2 * WINDOW + 1, range(0)) == 9
    finally:
        recorder.close()

    windows = recorder.windows
    assert [(w["epoch"], w["first_step"], w["steps"]) for w in windows] == \
        [(1, i * WINDOW, WINDOW) for i in range(12)] + [(2, 0, 4), (2, 4, 4), (2, 8, 1)]
    assert all(w["img_s"] > 0 and w["seconds"] > 0 for w in windows)
    # the third window is the reference profile; the slow stretch is found and profiled
    assert windows[2]["profiled"] == "reference" and windows[3]["after_profile"]
    stretch = [w for w in windows if w["epoch"] == 1 and 28 <= w["first_step"] < 36]
    normal = [w for w in windows if w["epoch"] == 1 and 4 <= w["first_step"] < 28
              and not w["profiled"]]
    assert max(w["img_s"] for w in stretch) < 0.5 * max(w["img_s"] for w in normal)
    profiled = [w["profiled"] for w in windows]
    assert profiled.count("slow") == 1 and profiled.index("slow") <= 8  # by the stretch's end
    found = {(w["epoch"], w["first_step"]) for w in recorder.slow_windows()}
    assert {(1, w["first_step"]) for w in stretch if not w["profiled"]} <= found
    assert (2, 8) not in found  # an epoch's last, single step is not judged
    for name in ("reference", "slow"):
        table = Path(recorder.profiles[name]).read_text()
        assert "aten::mm" in table  # the loop's own work, op by op
        assert (tmp_path / "profiles" / f"{name}.trace.json").stat().st_size > 0


def test_without_a_profile_folder_nothing_is_profiled() -> None:
    recorder = Recorder(torch.device("cpu"), batch_size=2, window=2)
    assert _train(recorder, 1, 12, range(6, 8)) == 12
    recorder.close()
    assert recorder.profiles == {} and not any(w["profiled"] for w in recorder.windows)
    assert len(recorder.windows) == 6
