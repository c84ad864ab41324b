"""Logs: one format on console and file; decisions and fallbacks are single greppable lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pillsnap.logs import log_decision, setup_logging


def test_decisions_reach_console_and_file_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "run" / "train.log"
    setup_logging("INFO", log_file)
    logger = logging.getLogger("pillsnap.test")
    log_decision(logger, "loader.threads", 8, "fastest of 2, 4, 8")
    log_decision(logger, "train.compile", "eager", "torch.compile failed: no C compiler",
                 fallback=True)
    for handler in logging.getLogger().handlers:
        handler.flush()
    file_lines = log_file.read_text(encoding="utf-8").splitlines()
    console = capsys.readouterr().err.splitlines()
    for lines in (file_lines, console):
        assert any(line.endswith("decision: loader.threads=8 (fastest of 2, 4, 8)")
                   for line in lines)
        assert any("WARNING" in line and "fallback: train.compile=eager" in line
                   for line in lines)
    setup_logging("INFO")  # again: handlers are replaced, not stacked
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_pillsnap_handler", False)]
    assert len(ours) == 1
