"""Everything one classifier run holds, built from the config (model, optimiser, loaders...).

``build_session`` is the set-up half of ``python -m pillsnap.train``; the loop lives in
``classifier.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from pillsnap.config.schema import PillsnapConfig
from pillsnap.data.classes import ClassIndex
from pillsnap.data.loader import PackLoader
from pillsnap.data.loader_factory import config_loader, loader_from_config
from pillsnap.data.prefetch import DevicePrefetcher
from pillsnap.logs import log_decision
from pillsnap.train.advisor import Advisor
from pillsnap.train.distributed import Dist
from pillsnap.train.ema import WarmupEma, make_ema
from pillsnap.train.model import create_classifier, set_grad_checkpointing
from pillsnap.train.oom import OomPolicy, Settings
from pillsnap.train.optim import Schedule, make_optimizer
from pillsnap.train.runtime import (
    CompiledForward,
    Precision,
    compile_mode,
    pick_precision,
    set_tf32,
)
from pillsnap.train.steplog import MetricLog

logger = logging.getLogger(__name__)

BatchHook = Callable[[torch.Tensor, torch.Tensor], None]


@dataclass
class Session:
    cfg: PillsnapConfig
    dist: Dist
    device: torch.device
    run_dir: Path
    classes: ClassIndex
    packs: dict[str, Path]
    model: torch.nn.Module  # the plain module: state_dict, EMA, evaluation
    forward: CompiledForward  # DDP-wrapped and compiled when asked: training forward
    ddp: DistributedDataParallel | None
    ema: WarmupEma | None
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    precision: Precision
    scaler: torch.amp.GradScaler
    criterion: torch.nn.Module
    settings: Settings
    oom: OomPolicy
    log: MetricLog
    advisor: Advisor
    threads: int = 0
    train_loader: PackLoader | None = None
    epoch: int = 0  # the next epoch to run
    step: int = 0  # optimiser steps taken
    best: float | None = None
    stale_epochs: int = 0
    temperature: float = 1.0
    open_set: dict[str, Any] | None = None  # score, tar and thresholds (train.calibrate)
    on_batch: BatchHook | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)

    _prefetcher: DevicePrefetcher | None = None
    _val_loader: PackLoader | None = None

    def feed(self, loader: PackLoader) -> DevicePrefetcher:
        """One prefetcher for the run, pointed at the train or val loader: its device
        set-up (and its one decision line) happens once, not every epoch."""
        if self._prefetcher is None:
            self._prefetcher = DevicePrefetcher(loader, self.device)
        self._prefetcher.loader = loader
        return self._prefetcher

    def batches(self, epoch: int) -> DevicePrefetcher:
        assert self.train_loader is not None
        self.train_loader.set_epoch(epoch)
        return self.feed(self.train_loader)

    def val_batches(self) -> DevicePrefetcher:
        if self._val_loader is None or self._val_loader.batch_size != self.settings.batch_size:
            self._val_loader = self.val_loader()
        return self.feed(self._val_loader)

    def rebuild_train_loader(self) -> None:
        """A loader for ``settings.batch_size`` (after an OOM step changed it)."""
        self.train_loader = config_loader(self.cfg, self.packs["train"], split="train",
                                          threads=self.threads,
                                          batch_size=self.settings.batch_size)

    def val_loader(self) -> PackLoader:
        return config_loader(self.cfg, self.packs["val"], split="val", threads=self.threads,
                             batch_size=self.settings.batch_size, advise=False)


def build_model(cfg: PillsnapConfig, classes: ClassIndex, device: torch.device) -> torch.nn.Module:
    model = create_classifier(cfg.models.classifier, len(classes))
    set_grad_checkpointing(model, cfg.train.grad_checkpointing)
    model = model.to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)  # the loader yields NHWC memory
    return model


def build_session(cfg: PillsnapConfig, d: Dist, device: torch.device, run_dir: Path, *,
                  classes: ClassIndex, packs: dict[str, Path], batch_size: int) -> Session:
    torch.manual_seed(cfg.run.seed + d.rank)
    t = cfg.train
    set_tf32(t, device)
    if cfg.dataloader.pin_memory and device.type != "cuda":
        # pin_memory=true (the default) means "pin when there is a GPU to copy to"
        log_decision(logger, "dataloader.pin_memory", False, "no CUDA: pinned host memory "
                     "only speeds up copies to a GPU")
    model = build_model(cfg, classes, device)
    ddp = None
    if d.enabled:
        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                      else None)
    forward = CompiledForward(ddp if ddp is not None else model, compile_mode(t, device))
    precision = pick_precision(t, device)
    optimizer = make_optimizer(model, t, device)
    session = Session(
        cfg=cfg, dist=d, device=device, run_dir=run_dir, classes=classes, packs=packs,
        model=model, forward=forward, ddp=ddp, ema=make_ema(model, t.ema), optimizer=optimizer,
        schedule=Schedule(optimizer, t), precision=precision, scaler=precision.make_scaler(),
        criterion=torch.nn.CrossEntropyLoss(label_smoothing=t.label_smoothing),
        settings=Settings(batch_size=batch_size, grad_accum=t.grad_accum,
                          fp16=precision.dtype is torch.float16),
        oom=OomPolicy(t.oom),
        log=MetricLog(run_dir, cfg.logging.tensorboard, enabled=d.main),
        advisor=Advisor(run_dir))
    session.train_loader = loader_from_config(cfg, packs["train"], train=True,
                                              batch_size=batch_size)
    session.threads = session.train_loader.threads
    if t.augment == "none":
        log_decision(logger, "train.augment", "none", "centre crops, shuffled, no flip")
    return session
