"""Processes on this machine as Linux ``/proc`` shows them, and a kill that waits.

    left = [p for p in processes() if p.pgid == server_pid]   # what a dead server left
    kill_and_wait(left, timeout_s=5.0)                         # SIGKILL, then until gone

Linux only (``/proc/<pid>/stat`` and ``cmdline``); elsewhere ``processes()`` is empty. The
launchers use it to reap what a killed tritonserver left behind: its python backend stubs,
reparented to PID 1, keep running (and their shared memory) when the server dies mid-request.
Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str  # one letter: R running, S sleeping, Z zombie, ...
    argv: tuple[str, ...]

    @property
    def zombie(self) -> bool:
        """Dead already; only its exit status waits for a parent (it holds no memory)."""
        return self.state in ("Z", "X")


def read_proc(pid: int) -> Proc | None:
    """One process, or None when it is gone (or was never there)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:  # gone between the listing and the read, or not ours to see
        return None
    # the command name in parentheses may itself hold spaces and ')': split after the last
    fields = stat.rsplit(")", 1)[1].split()
    argv = tuple(a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a)
    return Proc(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0], argv)


def processes() -> list[Proc]:
    """Every process this one can see, zombies included."""
    if not PROC.is_dir():
        return []
    found = (read_proc(int(d.name)) for d in PROC.iterdir() if d.name.isdigit())
    return [p for p in found if p is not None]


def gone(pid: int) -> bool:
    """No such process any more, or only its zombie."""
    proc = read_proc(pid)
    return proc is None or proc.zombie


def kill_and_wait(procs: Iterable[Proc], timeout_s: float = 5.0) -> list[int]:
    """SIGKILL each live process, then wait (up to ``timeout_s``) until all are gone; the
    pids it killed. They are not our children (PID 1 reaps them), so this polls /proc."""
    pids = [p.pid for p in procs if not p.zombie and p.pid != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids
