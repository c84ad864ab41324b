"""pillsnap.procs on real processes: /proc sees a child's group and command line, and
kill_and_wait ends processes that ignore SIGTERM, including one whose parent is gone.

    python -m pytest tests/test_procs.py -q
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from pillsnap.procs import gone, kill_and_wait, processes, read_proc

IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


def test_sees_a_child_s_group_session_and_command_line() -> None:
    code = IGNORE_TERM + "time.sleep(60)"
    with subprocess.Popen([sys.executable, "-c", code, "marker-arg"],
                          start_new_session=True) as child:
        try:
            proc = read_proc(child.pid)
            assert proc is not None
            assert (proc.ppid, proc.pgid, proc.sid) == (os.getpid(), child.pid, child.pid)
            assert proc.argv == (sys.executable, "-c", code, "marker-arg")
            assert proc in processes()
        finally:
            child.kill()
    assert read_proc(child.pid) is None  # collected by Popen's exit


def test_kills_an_orphan_that_ignores_sigterm() -> None:
    """A group leader starts a grandchild and dies: the grandchild lives on, re-parented,
    in the same group (what a killed tritonserver leaves)."""
    grandchild = IGNORE_TERM + "time.sleep(60)"
    spawn = (f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
             f"{grandchild!r}]); print(p.pid, flush=True)")
    with subprocess.Popen([sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True,
                          start_new_session=True) as leader:
        assert leader.stdout is not None
        orphan = int(leader.stdout.readline())
    assert leader.returncode == 0
    left = [p for p in processes() if p.pgid == leader.pid and not p.zombie]
    assert [p.pid for p in left] == [orphan]
    start = time.monotonic()
    assert kill_and_wait(left, timeout_s=5.0) == [orphan]
    assert gone(orphan) and time.monotonic() - start < 5.0
