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


def config_loader(cfg: PillsnapConfig, pack: Path | str, *, split: str, threads: int,
                  batch_size: int | None = None, seed: int | None = None,
                  advise: bool = True) -> PackLoader:
    """The PackLoader the config describes for ``split``, with ``threads`` threads.

    Train: shuffled, augmented as ``train.augment``/``crop_scale``/``hflip`` say, sharded
    by rank. Val: in order, centre crops, the whole split (rank 0 evaluates alone). With
    ``advise``, the cache policy is applied (one decision line).
    """
    dl = cfg.dataloader
    train = split == "train"
    loader = PackLoader(
        pack, batch_size=batch_size or cfg.train.batch_size,
        image_size=cfg.models.classifier.image_size,
        train=train and cfg.train.augment == "random_resized_crop", shuffle=train,
        threads=threads, seed=cfg.run.seed if seed is None else seed,
        drop_last=dl.drop_last if train else False, ring=dl.prefetch_batches,
        # None pins exactly when CUDA is present; the config can only turn pinning off.
        pin_memory=None if dl.pin_memory else False,
        rank=None if train else 0, world_size=None if train else 1,
        crop_scale=cfg.train.crop_scale, hflip=cfg.train.hflip)
    if advise and cfg.cache.policy == "hotset":
        lock = int(cfg.cache.hotset_gb * 2**30) if cfg.cache.mlock else 0
        loader.advise(cfg.cache.policy, lock)
    return loader


def loader_from_config(cfg: PillsnapConfig, pack: Path | str, *, train: bool = True,
                       batch_size: int | None = None, seed: int | None = None) -> PackLoader:
    """``config_loader`` with the thread count fixed by the config or measured.

    ``dataloader.threads=0`` with ``dataloader.autotune`` measures the candidates (capped at
    twice the cores: more only adds contention); ``threads=0`` without autotune uses every
    core.
    """
    dl = cfg.dataloader
    split = "train" if train else "val"
    cores = len(os.sched_getaffinity(0))

    def make(threads: int, advise: bool = False) -> PackLoader:
        return config_loader(cfg, pack, split=split, threads=threads, batch_size=batch_size,
                             seed=seed, advise=advise)

    threads = dl.threads
    if threads == 0 and dl.autotune:
        candidates = [t for t in dl.autotune_candidates if t <= 2 * cores] or [cores]
        threads = autotune_threads(make, candidates, batches=dl.autotune_batches)
    elif threads == 0:
        threads = cores
        log_decision(logger, "dataloader.threads", threads, "all cores (autotune off)")
    return make(threads, advise=True)
