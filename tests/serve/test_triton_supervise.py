"""The restart policy of ``python -m pillsnap.serve triton`` (``triton.restart``), on a stand-in
server: backoff, the bound, the reset after a stable run, a failed restart counting as one.
The real server killed mid-request: tests/triton/test_crash.py.

    python -m pytest tests/serve/test_triton_supervise.py -q
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from pillsnap.errors import ServerError
from pillsnap.serve import triton_supervise
from pillsnap.serve.triton_supervise import Restarts, supervise


def test_backoff_doubles_to_the_cap_and_stops_at_the_limit() -> None:
    restarts = Restarts(limit=7, first_s=1.0, cap_s=30.0, stable_s=60.0)
    assert [restarts.delay(up_s=2.0) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, None]


def test_a_server_that_stayed_up_starts_the_count_afresh() -> None:
    restarts = Restarts(limit=2, stable_s=60.0)
    assert [restarts.delay(1.0), restarts.delay(1.0), restarts.delay(1.0)] == [1, 2, None]
    assert restarts.delay(up_s=60.0) == 1 and restarts.count == 1


class StandIn:
    """Exits as told (a list of exit codes, one per run); ``start`` fails when told."""

    def __init__(self, codes: list[int], start_fails: int = 0) -> None:
        self.codes = codes
        self.start_fails = start_fails
        self.running = True
        self.starts = 0
        self.log_file = Path("/tmp/tritonserver.test.log")

    def exit_code(self) -> int | None:
        if self.running and self.codes:
            self.running = False
            return self.codes.pop(0)
        return None

    def start(self) -> None:
        self.starts += 1
        if self.start_fails:
            self.start_fails -= 1
            raise ServerError("tritonserver exited with code 1 during start-up\n--- log")
        self.running = True

    def log_tail(self) -> str:
        return "the last lines"


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triton_supervise, "POLL_S", 0.001)


def run(server: StandIn, restarts: Restarts, stop_after: int | None = None) -> int:
    """supervise() on ``server``; ``stop`` is set after ``stop_after`` ready calls."""
    stop, ready = threading.Event(), []

    def on_ready() -> None:
        ready.append(1)
        if stop_after is not None and len(ready) >= stop_after:
            stop.set()

    supervise(server, stop, restarts, on_ready)  # type: ignore[arg-type]
    return len(ready)


def test_restarts_with_one_log_line_each_then_gives_up(caplog: Any) -> None:
    server = StandIn(codes=[-9, -9, -9])
    with caplog.at_level(logging.WARNING), pytest.raises(ServerError) as info:
        run(server, Restarts(limit=2, first_s=0.001))
    assert server.starts == 2
    lines = [r.getMessage() for r in caplog.records if r.name == triton_supervise.__name__]
    assert [line.split(" in ")[0] for line in lines] == [
        "tritonserver exited (code -9); restart 1/2", "tritonserver exited (code -9); restart 2/2"]
    assert str(info.value) == "tritonserver stopped on its own (exited (code -9)) after 2 " \
        "restarts:\nthe last lines"


def test_never_exits_at_the_first_exit() -> None:
    server = StandIn(codes=[1])
    with pytest.raises(ServerError, match=r"^tritonserver stopped on its own \(exited \(code 1"
                       r"\)\):\nthe last lines$"):
        run(server, Restarts(limit=0))
    assert server.starts == 0


def test_a_failed_restart_counts_and_the_next_one_serves(caplog: Any) -> None:
    server = StandIn(codes=[-9], start_fails=1)
    with caplog.at_level(logging.WARNING):
        assert run(server, Restarts(limit=3, first_s=0.001), stop_after=1) == 1
    assert server.starts == 2 and server.running
    assert "did not start again (tritonserver exited with code 1 during start-up); restart " \
        "2/3" in caplog.text
