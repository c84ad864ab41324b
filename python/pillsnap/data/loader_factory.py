"""The loaders a config describes: ``python -m pillsnap.train`` builds its own through here.

    loader = loader_from_config(cfg, "artifacts/pack/train.pack", train=True, batch_size=64)

The caller owns the batch size (the trainer's ``Session.settings``: auto batch, a resumed
run or an OOM remedy may have changed it from ``train.batch_size``), so it is a required
argument here. The thread count comes from the config, or is measured at that batch size
(``pillsnap.data.autotune``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pillsnap.config.schema import PillsnapConfig
from pillsnap.data.autotune import autotune_threads
from pillsnap.data.loader import PackLoader
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


def config_loader(cfg: PillsnapConfig, pack: Path | str, *, split: str, threads: int,
                  batch_size: int, seed: int | None = None, advise: bool = True) -> PackLoader:
    """The PackLoader the config describes for ``split``, with ``threads`` threads.

    Train: shuffled, augmented as ``train.augment``/``crop_scale``/``hflip`` say, sharded
    by rank. Val: in order, centre crops, the whole split (rank 0 evaluates alone). With
    ``advise``, the cache policy is applied (one decision line).
    """
    dl = cfg.dataloader
    train = split == "train"
    loader = PackLoader(
        pack, batch_size=batch_size,
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


def loader_from_config(cfg: PillsnapConfig, pack: Path | str, *, batch_size: int,
                       train: bool = True, seed: int | None = None) -> PackLoader:
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
