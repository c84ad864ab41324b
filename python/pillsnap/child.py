"""A child process that a command or a test starts, waits for and stops: one way for all.

    with Child.start([sys.executable, "-m", "pillsnap.serve", "api", "--port", "0"],
                     name="the API", log=work / "server.log", cwd=work) as api:
        url = api.wait_for_output(API_READY_LINE, timeout_s=60)[1]
        ...                                                 # leaving the block stops it

(``API_READY_LINE``: ``pillsnap.serve``'s pattern for the line with the API's URL.)

- Output: stdout and stderr together into ``log`` (created afresh), or nowhere without one;
  stdin is /dev/null (no server here reads it).
- ``new_group=True``: the child leads a session of its own, so a terminal's Ctrl-C reaches
  only us (we stop it in order), and the kill after the grace period reaches its own
  children too (tritonserver's python backend stubs).
- ``wait_ready(probe)`` calls ``probe()`` until it returns something truthy and returns
  that; it raises ``NotReady`` when the child exits first or the time runs out. The child is
  left running: the caller stops it (leaving the ``with`` block does).
- ``stop()``: SIGTERM to the child, then SIGKILL (to its whole group when it leads one) if it
  is still there ``grace_s`` later.

Standard library only: the server launchers, the benchmarks, the demo and the tests use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


class NotReady(RuntimeError):
    """The child exited during start-up (``code``, its exit code) or was not ready in time
    (``code`` is None); the message ends with the last lines of its log."""

    def __init__(self, reason: str, code: int | None, log: Path | None, tail: str) -> None:
        where = f"\n--- last lines of {log}:\n{tail}" if log is not None else ""
        super().__init__(reason + where)
        self.reason = reason
        self.code = code


class Child:
    """A running child process (``Child.start``); a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen[bytes], *, name: str, log: Path | None,
                 new_group: bool, grace_s: float) -> None:
        self.process = process
        self.name = name
        self.log = log
        self.new_group = new_group
        self.grace_s = grace_s

    @classmethod
    def start(cls, argv: Sequence[str], *, name: str, log: Path | None = None,
              env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
              new_group: bool = False, grace_s: float = 10.0) -> Child:
        """Start ``argv``; ``name`` is how messages call it, ``grace_s`` how long ``stop``
        waits after SIGTERM."""
        output = log.open("wb") if log is not None else contextlib.nullcontext(subprocess.DEVNULL)
        with output as out:  # the child keeps its own copy of the file
            process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT,
                                       env=dict(env) if env is not None else None, cwd=cwd,
                                       start_new_session=new_group)
        return cls(process, name=name, log=log, new_group=new_group, grace_s=grace_s)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def __enter__(self) -> Child:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------------ readiness

    def wait_ready(self, probe: Callable[[], T | None], *, timeout_s: float,
                   interval_s: float = 0.1) -> T:
        """``probe()``'s first truthy answer, asked every ``interval_s``; NotReady when the
        child exits first or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = probe()
            if found:
                return found
            code = self.process.poll()
            if code is not None:
                raise NotReady(f"{self.name} exited with code {code} during start-up", code,
                               self.log, self.log_tail())
            if time.monotonic() > deadline:
                raise NotReady(f"{self.name} not ready after {timeout_s:g} s", None, self.log,
                               self.log_tail())
            time.sleep(interval_s)

    def wait_for_output(self, pattern: str, *, timeout_s: float,
                        interval_s: float = 0.1) -> re.Match[str]:
        """The first match of ``pattern`` in the log (the child's stdout and stderr)."""
        if self.log is None:
            raise ValueError(f"{self.name} was started without a log")
        return self.wait_ready(lambda: re.search(pattern, self.log_text()),
                               timeout_s=timeout_s, interval_s=interval_s)

    def log_text(self) -> str:
        return read_log(self.log)

    def log_tail(self, lines: int = 25) -> str:
        return log_tail(self.log, lines)

    # ------------------------------------------------------------------------ stopping

    def stop(self, grace_s: float | None = None) -> bool:
        """SIGTERM, then SIGKILL (to the group when the child leads one) if it is still
        running ``grace_s`` (default: the one given to ``start``) later. True when it had to
        be killed."""
        if self.process.poll() is not None:
            return False
        grace = self.grace_s if grace_s is None else grace_s
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
            return False
        except subprocess.TimeoutExpired:
            pass
        logger.warning("%s did not stop in %g s; killing it", self.name, grace)
        with contextlib.suppress(ProcessLookupError):
            if self.new_group:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own children too
            else:
                self.process.kill()
        self.process.wait()
        return True


def read_log(log: Path | None) -> str:
    """A log file's text ("" when there is none yet)."""
    if log is None or not log.is_file():
        return ""
    return log.read_text(encoding="utf-8", errors="replace")


def log_tail(log: Path | None, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file."""
    return "\n".join(read_log(log).splitlines()[-lines:])


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200 (a readiness probe)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
