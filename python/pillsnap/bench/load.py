"""A closed-loop load generator: N concurrent clients, each sending its next request as soon
as the previous one is answered (what perf_analyzer's concurrency mode does).

    stats = asyncio.run(closed_loop(send, total=400, concurrency=8))

``send()`` is a coroutine that performs one request and raises on failure; the stats give
requests per second, latency percentiles of the successful requests, and errors by type.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from pillsnap.bench.latency import percentiles


async def closed_loop(send: Callable[[], Awaitable[object]], *, total: int,
                      concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    remaining = total

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1  # one event loop: no lock needed between awaits
            started = time.perf_counter()
            try:
                await send()
            except Exception as exc:
                errors[type(exc).__name__] += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    stats: dict[str, Any] = {"requests": total, "concurrency": concurrency,
                             "seconds": seconds, "rps": len(latencies) / seconds,
                             "errors": sum(errors.values()), "error_types": dict(errors)}
    if latencies:
        stats.update(percentiles(latencies))
    return stats
