"""Pick the loader thread count by measuring: a short timed run per candidate.

The best count depends on the CPU, the JPEG sizes and what else the machine is doing, so
it is measured at start (about a second per candidate) rather than guessed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pillsnap.config.schema import PillsnapConfig
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


def loader_from_config(cfg: PillsnapConfig, pack: Path | str, *, train: bool,
                       batch_size: int | None = None, seed: int | None = None) -> PackLoader:
    """The PackLoader the config describes: thread count fixed or measured, cache policy.

    ``dataloader.threads=0`` with ``dataloader.autotune`` measures the candidates (capped at
    twice the cores: more only adds contention); ``threads=0`` without autotune uses every
    core.
    """
    dl = cfg.dataloader
    cores = len(os.sched_getaffinity(0))
    gib = 2**30
    lock = int(cfg.cache.hotset_gb * gib) if cfg.cache.mlock else 0

    # pin_memory=None pins exactly when CUDA is present; the config can only turn it off.
    pin = None if dl.pin_memory else False

    def make(threads: int) -> PackLoader:
        return PackLoader(pack, batch_size=batch_size or cfg.train.batch_size,
                          image_size=cfg.models.classifier.image_size, train=train,
                          threads=threads, seed=cfg.run.seed if seed is None else seed,
                          drop_last=dl.drop_last if train else False,
                          ring=dl.prefetch_batches, pin_memory=pin,
                          crop_scale=cfg.train.crop_scale, hflip=cfg.train.hflip)

    threads = dl.threads
    if threads == 0 and dl.autotune:
        candidates = [t for t in dl.autotune_candidates if t <= 2 * cores] or [cores]
        threads = autotune_threads(make, candidates, batches=dl.autotune_batches)
    elif threads == 0:
        threads = cores
        log_decision(logger, "dataloader.threads", threads, "all cores (autotune off)")
    loader = make(threads)
    if cfg.cache.policy == "hotset":
        loader.advise(cfg.cache.policy, lock)
    return loader
