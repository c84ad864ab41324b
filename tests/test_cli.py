"""pillsnap.cli: a failure raised on purpose is one line and exit code 2; anything else keeps
its traceback."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pillsnap.cli import EXIT_ERROR, run_main
from pillsnap.config import PillsnapConfig
from pillsnap.config.cli import run_with_config
from pillsnap.errors import ConfigError, DataError

logger = logging.getLogger("pillsnap.test_cli")


def fail(exc: Exception) -> int:
    raise exc


def test_the_body_s_exit_code() -> None:
    assert run_main(lambda: 0, logger) == 0
    assert run_main(lambda: 3) == 3


def test_a_pillsnap_error_is_one_logged_line_and_code_2(
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.ERROR):
        assert run_main(lambda: fail(DataError("no AIHub folders")), logger) == EXIT_ERROR == 2
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("pillsnap.test_cli", "ERROR", "no AIHub folders")]
    assert capsys.readouterr().err == ""


def test_without_a_logger_the_line_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(lambda: fail(ConfigError("unknown key"))) == 2
    assert capsys.readouterr().err == "error: unknown key\n"


def test_only_the_errors_named_are_caught() -> None:
    assert run_main(lambda: fail(ValueError("bad")), logger, catch=(ValueError,)) == 2
    with pytest.raises(KeyError):
        run_main(lambda: fail(KeyError("a bug")), logger)
    with pytest.raises(ValueError):
        run_main(lambda: fail(ValueError("bad")), logger)  # not a PillsnapError


def test_run_with_config_loads_the_config_and_sets_the_log_level(in_tmp: Path) -> None:
    seen: list[PillsnapConfig] = []
    args = argparse.Namespace(cfg=None, env_file=Path("none.env"),
                              overrides=["train.epochs=7", "logging.level=WARNING"])
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        assert run_with_config(args, lambda cfg: seen.append(cfg) or 5, logger) == 5
        assert root.level == logging.WARNING
    finally:
        for handler in set(root.handlers) - set(handlers):
            root.removeHandler(handler)
        root.setLevel(level)
    assert seen[0].train.epochs == 7


def test_a_bad_override_ends_a_command_with_one_line(in_tmp: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pillsnap.eval", "train.epochz=1"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "train.epochz" in done.stderr and "Traceback" not in done.stderr
