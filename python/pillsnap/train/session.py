"""Everything one classifier run holds, built from the config (model, optimiser, loaders...).

``build_session`` is the set-up half of ``python -m pillsnap.train``; the loop lives in
``classifier.py``. The batch size has one owner, ``Session.settings``: it starts at
``train.batch_size`` (or a resumed run's), and only ``use_settings`` changes it. The train
loader opens once the batch is settled (``open_train_loader``), so its threads are tuned
at the size that trains.
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
from pillsnap.contract.recipe import Recipe
from pillsnap.data.classes import ClassIndex
from pillsnap.data.loader import PackLoader
from pillsnap.data.loader_factory import config_loader, loader_from_config
from pillsnap.data.prefetch import DevicePrefetcher
from pillsnap.logs import log_decision
from pillsnap.train.advisor import Advisor
from pillsnap.train.distributed import Dist
from pillsnap.train.ema import WarmupEma, make_ema
from pillsnap.train.midepoch import MidEpochCheckpoints
from pillsnap.train.model import create_classifier, set_grad_checkpointing
from pillsnap.train.oom import OomPolicy, Settings
from pillsnap.train.optim import Schedule, make_optimizer, scaled_lr
from pillsnap.train.recipe import training_recipe
from pillsnap.train.run_state import Position
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
    recipe: Recipe  # what serving must repeat, calibrated at each evaluation
    threads: int = 0
    train_loader: PackLoader | None = None
    epoch: int = 0  # the next epoch to run
    step: int = 0  # optimiser steps taken
    best: float | None = None
    stale_epochs: int = 0
    on_batch: BatchHook | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)
    checkpoints: MidEpochCheckpoints | None = None  # train.checkpoint_every_minutes/_steps
    resume_at: Position | None = None  # a resumed mid-epoch checkpoint's place in s.epoch

    _prefetcher: DevicePrefetcher | None = None
    _val_loader: PackLoader | None = None

    def feed(self, loader: PackLoader) -> DevicePrefetcher:
        """One prefetcher for the run, pointed at the train or val loader: its device
        set-up (and its one decision line) happens once, not every epoch."""
        if self._prefetcher is None:
            self._prefetcher = DevicePrefetcher(loader, self.device)
        self._prefetcher.loader = loader
        return self._prefetcher

    def batches(self, epoch: int, start_batch: int = 0) -> DevicePrefetcher:
        assert self.train_loader is not None
        self.train_loader.set_epoch(epoch, start_batch)
        return self.feed(self.train_loader)

    def take_resume(self, epoch: int) -> Position | None:
        """The resumed position inside ``epoch``, once: a retry of the epoch (after an OOM
        remedy changed the batch) starts it again from batch 0."""
        position, self.resume_at = self.resume_at, None
        return position if position is not None and position.epoch == epoch else None

    def val_batches(self) -> DevicePrefetcher:
        if self._val_loader is None or self._val_loader.batch_size != self.settings.batch_size:
            self._val_loader = self.val_loader()
        return self.feed(self._val_loader)

    def use_settings(self, settings: Settings) -> None:
        """The one way the batch size or accumulation changes (auto batch, resume, an OOM
        remedy): the learning rate follows the global batch and an open train loader is
        rebuilt at the new size (the val loader follows on its next use)."""
        before, self.settings = self.settings, settings
        self.follow_global_batch()
        if self.train_loader is not None and settings.batch_size != before.batch_size:
            self.train_loader = config_loader(self.cfg, self.packs["train"], split="train",
                                              threads=self.threads,
                                              batch_size=settings.batch_size)

    def follow_global_batch(self) -> None:
        """Set the schedule's peak lr for this run's global batch (``train.lr_scaling``)."""
        t, s = self.cfg.train, self.settings
        global_batch = s.batch_size * s.grad_accum * self.dist.world
        lr = scaled_lr(t, global_batch)
        if lr != self.schedule.base_lr:
            log_decision(logger, "train.lr", f"{lr:.4g}", f"{t.lr_scaling} rule: global batch "
                         f"{global_batch} ({s.batch_size} x {s.grad_accum} accumulated x "
                         f"{self.dist.world} processes); train.lr={t.lr:g} is for "
                         f"{t.batch_size * t.grad_accum}")
            self.schedule.base_lr = lr

    def open_train_loader(self) -> None:
        """The train loader at the settled batch size; its threads are measured (or fixed by
        the config) at that size, so call it after the batch is decided."""
        self.train_loader = loader_from_config(self.cfg, self.packs["train"], train=True,
                                               batch_size=self.settings.batch_size)
        self.threads = self.train_loader.threads

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
        advisor=Advisor(run_dir), recipe=training_recipe(cfg, classes),
        checkpoints=MidEpochCheckpoints(cfg, d))
    session.follow_global_batch()
    if t.augment == "none":
        log_decision(logger, "train.augment", "none", "centre crops, shuffled, no flip")
    return session
