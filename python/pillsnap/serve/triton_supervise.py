"""Keep a tritonserver up: start it again when it exits on its own (``triton.restart``).

    python -m pillsnap.serve triton                                  # restart: on-failure
    python -m pillsnap.serve triton triton.restart=never             # exit when it dies

``on-failure``: a server that exits while nobody asked it to stop (crash, OOM kill,
``kill -9``) is started again on the same ports after 1, 2, 4, ... s (at most 30 s), at most
``triton.restart_max`` times in a row, one log line each; a server that stayed up 60 s or
more starts the count afresh (a crash a day is not a crash loop). A restart that fails to
start counts as one more failure. When none is left, or with ``never``, the launcher exits
with the reason and the server log's tail. What a dead server left (stubs, shm) is reaped
before the next one starts (``TritonServer``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pillsnap.errors import ServerError
from pillsnap.serve.triton_server import TritonServer

logger = logging.getLogger(__name__)

POLL_S = 0.5  # how soon an exit is noticed


@dataclass
class Restarts:
    """How long to wait before the next start, or None when no restart is left."""

    limit: int  # restarts in a row; 0: never restart
    first_s: float = 1.0
    cap_s: float = 30.0
    stable_s: float = 60.0  # up this long: the exit is not part of a crash loop
    count: int = 0  # restarts in the current run of failures

    def delay(self, up_s: float) -> float | None:
        """The wait before restart number ``count`` (after this call) of a server that was up
        ``up_s`` seconds, or None when the restarts are used up."""
        if up_s >= self.stable_s:
            self.count = 0
        if self.count >= self.limit:
            return None
        self.count += 1
        return min(self.cap_s, self.first_s * 2 ** (self.count - 1))


def supervise(server: TritonServer, stop: threading.Event, restarts: Restarts,
              on_ready: Callable[[], None] = lambda: None) -> None:
    """Return when ``stop`` is set (the server still runs: the caller stops it); restart
    the server when it exits on its own (``on_ready`` after each restart); raise
    ServerError when it exits and no restart is left."""
    while True:
        up_since = time.monotonic()
        code = _wait_exit(server, stop)
        if code is None:
            return
        why = f"exited (code {code})"
        while True:
            delay = restarts.delay(time.monotonic() - up_since)
            if delay is None:
                after = f" after {restarts.count} restarts" if restarts.count else ""
                raise ServerError(f"tritonserver stopped on its own ({why}){after}:\n"
                                  f"{server.log_tail()}")
            logger.warning("tritonserver %s; restart %d/%d in %g s (its log: %s)", why,
                           restarts.count, restarts.limit, delay, server.log_file)
            if stop.wait(delay):
                return
            up_since = time.monotonic()
            try:
                server.start()
                break
            except ServerError as exc:  # start reaped it already; the next try waits longer
                why = f"did not start again ({str(exc).splitlines()[0]})"
        on_ready()


def _wait_exit(server: TritonServer, stop: threading.Event) -> int | None:
    """The server's exit code once it exited and was reaped; None when ``stop`` came first."""
    while not stop.wait(POLL_S):
        code = server.exit_code()
        if code is not None:
            return code
    return None
