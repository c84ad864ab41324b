"""Progress bars are for a terminal: never in train.log/pack.log, never in captured stderr.

A CPU run's log reads as normal: what automatic settings chose without CUDA are INFO
``decision:`` lines, not WARNING ``fallback:`` lines.
"""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pillsnap.config import PillsnapConfig
from pillsnap.data.pack import build_pack
from pillsnap.logs import setup_logging
from pillsnap.train.classifier import train_classifier

# What a tqdm bar leaves in text: "epoch 0:  25%|██▌       | 1/4 [00:00<00:01,  3.1batch/s]"
BAR = re.compile(r"\d+%\||\d+/\d+ \[|batch/s|img/s|\?batch|\?img")


class Console(io.StringIO):
    """stderr as a test sees it: a terminal (``isatty``) or a file/pipe (nohup, tee, CI)."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture(params=[True, False], ids=["tty", "redirected"])
def console(request: pytest.FixtureRequest) -> Iterator[Console]:
    """A stand-in for stderr; the test installs it (pytest's capture resets sys.stderr
    between set-up and call). Afterwards the logging handlers bound to it are replaced."""
    yield Console(tty=request.param)
    setup_logging("WARNING")  # drops (and closes) the handlers on the fake and the log file


def _segments(text: str) -> list[str]:
    """What a terminal shows line by line: a carriage return starts over, too."""
    return re.split(r"[\r\n]", text)


def test_training_bar_reaches_the_terminal_only(
        make_cfg: Callable[..., PillsnapConfig], console: Console,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", console)
    cfg = make_cfg()
    train_classifier(cfg)
    for handler in logging.getLogger().handlers:
        handler.flush()
    log = (Path(cfg.run.out_dir) / cfg.run.name / "train.log").read_text(encoding="utf-8")
    shown = console.getvalue()

    # The log file: one plain line per step, no redraws, no bar.
    assert "step 1 epoch 0 loss=" in log and "step 4 epoch 0 loss=" in log
    assert "\r" not in log
    assert not BAR.search(log), BAR.search(log)

    # The console gets the same step lines; the bar only when it is a terminal.
    assert "step 1 epoch 0 loss=" in shown
    if console.tty:
        assert "\r" in shown and BAR.search(shown)
        # log lines go above the bar (tqdm.write), not glued onto its last redraw
        for segment in _segments(shown):
            if "step " in segment and " loss=" in segment:
                assert not BAR.search(segment), segment
    else:
        assert "\r" not in shown
        assert not BAR.search(shown), BAR.search(shown)

    # A CPU run reads as normal: the choices no CUDA forces on automatic settings are
    # decisions at INFO, one line each.
    for what in ("device=cpu", "amp=fp32", "tf32=False", "dataloader.pin_memory=False"):
        lines = [line for line in log.splitlines() if f": {what} (" in line]
        assert len(lines) == 1, (what, lines)
        assert " INFO " in lines[0] and f"decision: {what}" in lines[0], lines[0]


def test_pack_bar_reaches_the_terminal_only(
        tiny_data: dict[str, Path], tmp_path: Path, console: Console,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", console)
    log_file = tmp_path / "pack.log"
    setup_logging("INFO", log_file)
    report = build_pack(tiny_data["manifest"], tiny_data["root"], tmp_path / "val.pack",
                        split="val", short_side=40, region="pill", workers=1)
    assert report["records"] > 0
    for handler in logging.getLogger().handlers:
        handler.flush()
    log = log_file.read_text(encoding="utf-8")
    shown = console.getvalue()
    assert "\r" not in log and not BAR.search(log)
    if console.tty:
        assert "pack val" in shown and BAR.search(shown)
    else:
        assert "\r" not in shown and not BAR.search(shown)
