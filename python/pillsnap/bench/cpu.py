"""CPU time used by processes, from Linux's /proc: who pays for a request on a shared machine.

    before = cpu_seconds(pid)           # one process, all its threads
    before = cpu_seconds(pgid, group=True)  # every live process of a process group

A load test on loopback shares the cores between the load generator, the proxy and the
server behind it; CPU seconds per request show where the time went when wall-clock figures
cannot. Elsewhere than Linux (no /proc) the figures are ``None``.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid_dir: Path) -> list[str] | None:
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:  # gone meanwhile, or no /proc
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on: comm may hold spaces


def cpu_seconds(pid: int, *, group: bool = False) -> float | None:
    """User + system seconds of ``pid`` (with ``group``: of every live process whose process
    group is ``pid``, e.g. tritonserver and its python backend stubs)."""
    if not group:
        fields = _stat(Path("/proc") / str(pid))
        return None if fields is None else (int(fields[11]) + int(fields[12])) / _TICK
    if not Path("/proc/self/stat").is_file():
        return None
    total = 0.0
    for entry in Path("/proc").iterdir():
        fields = _stat(entry) if entry.name.isdigit() else None
        if fields is not None and int(fields[2]) == pid:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total
