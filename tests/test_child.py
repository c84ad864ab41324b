"""pillsnap.child with real child processes: a ready line, an HTTP probe, an early exit, a
timeout, a child that ignores SIGTERM and a process group that has to be killed whole."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from pillsnap.child import Child, NotReady, http_ok
from pillsnap.procs import gone

SLEEP = "import time; time.sleep(60)"
IGNORE_TERM = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_waits_for_a_line_of_its_output_then_stops_it(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    code = "import os; print('cwd', os.getcwd()); print('listening on', os.environ['PORT'], " \
           "flush=True); " + SLEEP
    with Child.start(python(code), name="the server", log=log, cwd=tmp_path,
                     env={**os.environ, "PORT": "4321"}) as child:
        found = child.wait_for_output(r"listening on (\d+)", timeout_s=30)
        assert found[1] == "4321" and child.running
        assert f"cwd {tmp_path}" in child.log_text()
        assert child.stop() is False  # SIGTERM was enough
    assert child.process.returncode == -signal.SIGTERM
    assert child.stop() is False  # stopping again does nothing


def test_an_http_probe(tmp_path: Path) -> None:
    command = [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"]
    with Child.start(command, name="http.server", log=tmp_path / "http.log",
                     cwd=tmp_path) as child:
        port = child.wait_for_output(r"port (\d+)", timeout_s=30)[1]
        url = f"http://127.0.0.1:{port}/"
        assert child.wait_ready(lambda: http_ok(url), timeout_s=30) is True
        assert not http_ok(f"http://127.0.0.1:{port}/missing")  # 404
    assert not http_ok(url, timeout_s=1)  # stopped: nothing listens


def test_a_child_that_exits_during_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = Child.start(python("import sys; print('bad setting: x'); sys.exit(3)"),
                        name="the server", log=log)
    with pytest.raises(NotReady) as info:
        child.wait_for_output("ready", timeout_s=30)
    assert info.value.code == 3
    assert info.value.reason == "the server exited with code 3 during start-up"
    assert str(info.value) == ("the server exited with code 3 during start-up\n"
                               f"--- last lines of {log}:\nbad setting: x")


def test_a_child_not_ready_in_time_is_left_running_for_the_caller(tmp_path: Path) -> None:
    with Child.start(python(SLEEP), name="sleeper", log=tmp_path / "sleep.log") as child:
        started = time.monotonic()
        with pytest.raises(NotReady) as info:
            child.wait_ready(lambda: None, timeout_s=0.5, interval_s=0.05)
        assert 0.5 <= time.monotonic() - started < 10
        assert info.value.code is None and info.value.reason == "sleeper not ready after 0.5 s"
        assert child.running
    assert not child.running


def test_sigterm_then_sigkill_after_the_grace_period(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    child = Child.start(python(IGNORE_TERM + "print('ready', flush=True); " + SLEEP),
                        name="stubborn", log=tmp_path / "stubborn.log", grace_s=0.5)
    child.wait_for_output("ready", timeout_s=30)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="pillsnap.child"):
        assert child.stop() is True
    assert 0.5 <= time.monotonic() - started < 10
    assert child.process.returncode == -signal.SIGKILL
    assert "stubborn did not stop in 0.5 s; killing it" in caplog.text


def test_a_new_group_is_killed_whole(tmp_path: Path) -> None:
    grandchild = f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', " \
                 f"{IGNORE_TERM + SLEEP!r}]); print('grandchild', p.pid, flush=True); "
    child = Child.start(python(IGNORE_TERM + grandchild + SLEEP), name="group leader",
                        log=tmp_path / "group.log", new_group=True, grace_s=0.5)
    pid = int(child.wait_for_output(r"grandchild (\d+)", timeout_s=30)[1])
    assert os.getsid(child.pid) == child.pid  # a session of its own
    assert os.getpgid(pid) == child.pid
    assert child.stop() is True
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


def test_without_a_log_the_output_goes_nowhere() -> None:
    with Child.start(python("print('x' * 100000); " + SLEEP), name="quiet") as child:
        assert child.log_text() == "" and child.log_tail() == ""
        with pytest.raises(ValueError, match="quiet was started without a log"):
            child.wait_for_output("x", timeout_s=1)
        with pytest.raises(NotReady) as info:
            child.wait_ready(lambda: None, timeout_s=0.1)
        assert str(info.value) == "quiet not ready after 0.1 s"  # no log to quote


def test_leaving_the_block_on_an_error_stops_the_child(tmp_path: Path) -> None:
    with pytest.raises(KeyError), Child.start(python(SLEEP), name="sleeper") as child:
        raise KeyError("the caller failed")
    assert child.process.returncode == -signal.SIGTERM
