"""Admission control: a bounded queue in front of the backend, so overload is a quick 503.

    gate = AdmissionGate(capacity=backend.concurrency, max_queue=settings.max_queue)
    async with gate.slot():            # raises Overloaded at once when the queue is full
        answer = await backend.predict(...)

At most ``capacity`` requests hold a slot (the backend's own concurrency: the embedded
backend's worker threads, Triton's connection pool); up to ``max_queue`` more wait for one,
first come first served; a request that finds the queue full is refused at once with
``Overloaded`` (503 ``overloaded`` with ``Retry-After``) instead of waiting into
``serve.request_timeout_s``. Without the bound, a burst of N requests on a backend that
completes R per second makes the last one wait N / R seconds, and past the timeout every
request in the burst ends as a 503 after having cost a full wait.

One gate per app, used only on the event loop (no locks: nothing awaits between a check
and its update). Tests: ``python -m pytest tests/serve/test_admission.py -q``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from pillsnap.serve.errors import BackendTimeout, Overloaded

# Weight of the newest service time in the running mean behind Retry-After: a few recent
# requests dominate, so the hint follows a change of photo size or backend speed quickly.
SERVICE_WEIGHT = 0.2
FIRST_SERVICE_S = 1.0  # the guess before any request finished


class AdmissionGate:
    """``capacity`` slots and a FIFO of at most ``max_queue`` waiters (0: never wait)."""

    def __init__(self, capacity: int, max_queue: int, *, max_retry_after_s: int = 60) -> None:
        if capacity < 1 or max_queue < 0:
            raise ValueError(f"capacity {capacity} must be >= 1 and max_queue {max_queue} >= 0")
        self.capacity, self.max_queue = capacity, max_queue
        self.max_retry_after_s = max_retry_after_s
        self.busy = 0  # requests holding a slot
        self._waiters: deque[anyio.Event] = deque()
        self._service_s = FIRST_SERVICE_S
        self._served = 0

    @property
    def waiting(self) -> int:
        """Requests in the queue now (the ``pillsnap_queue_depth`` gauge)."""
        return len(self._waiters)

    def retry_after_s(self) -> int:
        """Seconds until the work in front of a new arrival should be done: the mean recent
        service time x (holders + waiters) / capacity, rounded up; at least 1."""
        ahead = (self.busy + self.waiting) / self.capacity
        return max(1, min(self.max_retry_after_s, math.ceil(self._service_s * ahead)))

    @asynccontextmanager
    async def slot(self, wait_s: float | None = None) -> AsyncIterator[None]:
        """Hold a slot for the block; ``wait_s`` bounds the time in the queue
        (``BackendTimeout`` past it). Cancelling a waiter takes it out of the queue."""
        if wait_s is None:
            await self._acquire()
        else:
            try:
                with anyio.fail_after(wait_s):
                    await self._acquire()
            except TimeoutError:
                raise BackendTimeout(f"no worker was free within {wait_s:g} s; the server is "
                                     "overloaded, try again shortly") from None
        started = time.perf_counter()
        try:
            yield
        finally:
            self._observe(time.perf_counter() - started)
            self._release()

    async def _acquire(self) -> None:
        if self.busy < self.capacity and not self._waiters:
            self.busy += 1
            return
        if len(self._waiters) >= self.max_queue:
            retry = self.retry_after_s()
            raise Overloaded(f"the server is busy: {self.busy} request(s) computing and "
                             f"{self.waiting} waiting (serve.max_queue={self.max_queue}); "
                             f"try again in {retry} s", retry_after_s=retry)
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()  # set by _release, which hands its slot over (busy unchanged)
        except BaseException:
            if event in self._waiters:
                self._waiters.remove(event)
            else:  # the slot was handed over as the wait was cancelled: pass it on
                self._release()
            raise

    def _release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self.busy -= 1

    def _observe(self, seconds: float) -> None:
        self._served += 1
        weight = 1.0 if self._served == 1 else SERVICE_WEIGHT
        self._service_s += weight * (seconds - self._service_s)
