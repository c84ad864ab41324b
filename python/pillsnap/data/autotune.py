"""Pick the loader thread count by measuring: a short timed run per candidate.

The best count depends on the CPU, the JPEG sizes and what else the machine is doing, so
it is measured at start (about a second per candidate) rather than guessed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from pillsnap.data.loader import PackLoader
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


def measure(loader: PackLoader, batches: int) -> float:
    """Images per second over ``batches`` batches, after one warm-up batch."""
    seen, started = 0, 0.0
    for n, (images, _) in enumerate(loader):
        if n == 0:
            started = time.perf_counter()
            continue
        seen += images.shape[0]
        if n >= batches:
            break
    elapsed = time.perf_counter() - started
    return seen / elapsed if elapsed > 0 else 0.0


def autotune_threads(make: Callable[[int], PackLoader], candidates: Sequence[int],
                     batches: int = 20) -> int:
    """Build a loader per candidate with ``make(threads)``, time it, return the fastest."""
    if not candidates:
        raise ValueError("autotune needs at least one thread count")
    rates: dict[int, float] = {}
    for threads in sorted(set(candidates)):
        loader = make(threads)
        rates[threads] = measure(loader, batches)
        del loader  # joins its threads before the next candidate starts
    best = max(rates, key=lambda t: rates[t])
    table = ", ".join(f"{t}: {r:.0f} img/s" for t, r in sorted(rates.items()))
    log_decision(logger, "dataloader.threads", best, f"fastest of {table}")
    return best
