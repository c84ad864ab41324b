"""A closed-loop load generator: N concurrent clients, each sending its next request as soon
as the previous one is answered (what perf_analyzer's concurrency mode does).

    stats = asyncio.run(closed_loop(send, total=400, concurrency=8))

``send()`` is a coroutine that performs one request and raises on failure; the stats give
requests per second, latency percentiles and the maximum of the successful requests, and
errors by kind: the exception's class name, or what ``error_key(exc)`` says (an HTTP load
test counts refusals by status code). With ``max_seconds``, requests not yet sent when the
time is up are counted as ``not_sent`` instead of being sent.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from pillsnap.bench.latency import percentiles


def _class_name(exc: Exception) -> str:
    return type(exc).__name__


async def closed_loop(send: Callable[[], Awaitable[object]], *, total: int, concurrency: int,
                      max_seconds: float | None = None,
                      error_key: Callable[[Exception], str] = _class_name) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    remaining = total
    deadline = time.monotonic() + max_seconds if max_seconds is not None else float("inf")

    async def client() -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1  # one event loop: no lock needed between awaits
            started = time.perf_counter()
            try:
                await send()
            except Exception as exc:
                errors[error_key(exc)] += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    stats: dict[str, Any] = {"requests": total, "concurrency": concurrency,
                             "seconds": seconds, "ok": len(latencies),
                             "rps": len(latencies) / seconds, "errors": sum(errors.values()),
                             "error_types": dict(errors), "not_sent": remaining}
    if latencies:
        stats.update(percentiles(latencies), max=max(latencies))
    return stats
