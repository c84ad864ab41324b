"""Train the pill classifier: ``python -m pillsnap.train --cfg config.yaml [key=value ...]``.

Reads ``data.manifest_dir`` (classes.json) and ``pack.out_dir`` (train.pack/val.pack,
packed when missing), writes to ``run.out_dir/run.name``: train.log, TensorBoard events,
config.yaml, best.pt/last.pt, eval_report.json, advisor.json. Under
``torchrun --nproc_per_node=N -m pillsnap.train`` every rank trains its shard; rank 0 alone
evaluates, logs and saves.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from pillsnap.config import save_config
from pillsnap.config.schema import PillsnapConfig
from pillsnap.logs import log_decision, setup_logging
from pillsnap.train import distributed as dist_mod
from pillsnap.train import loop
from pillsnap.train.autobatch import tune_batch
from pillsnap.train.calibrate import calibrate
from pillsnap.train.checkpoint import load_checkpoint, resolve_resume, save_atomic
from pillsnap.train.inputs import check_pack, ensure_packs, load_classes
from pillsnap.train.metrics import as_record, summarise
from pillsnap.train.model import classifier_from_checkpoint
from pillsnap.train.oom import free_memory, log_oom_step
from pillsnap.train.openset import fit_open_set, gallery_state
from pillsnap.train.recipe import calibrated, recipe_of
from pillsnap.train.run_state import (
    RngState,
    check_position,
    checkpoint_state,
    gather_rng,
    restore,
)
from pillsnap.train.runtime import Precision
from pillsnap.train.session import BatchHook, Session, build_session
from pillsnap.train.steplog import cuda_mem_mb
from pillsnap.train.timecap import epochs_that_fit, log_cap

logger = logging.getLogger("pillsnap.train")

HIGHER_IS_BETTER = {"macro_f1": True, "top1": True, "val_loss": False}


def train_classifier(cfg: PillsnapConfig, *, on_batch: BatchHook | None = None) -> dict[str, Any]:
    """Train, evaluate, calibrate and checkpoint; returns the last evaluation's metrics.

    ``on_batch(images, labels)`` sees every training batch of this rank (tests use it).
    """
    d = dist_mod.init_distributed()
    run_dir = Path(cfg.run.out_dir) / cfg.run.name
    if d.main:
        log_file = run_dir / "train.log" if cfg.logging.file else None
        setup_logging(cfg.logging.level, log_file)
        save_config(cfg, run_dir / "config.yaml")
        dist_mod.log_setup(d)
    else:
        setup_logging("ERROR")  # one voice: rank 0 logs for the run
    try:
        return _train(cfg, d, run_dir, on_batch)
    finally:
        dist_mod.shutdown(d)


def _train(cfg: PillsnapConfig, d: dist_mod.Dist, run_dir: Path,
           on_batch: BatchHook | None) -> dict[str, Any]:
    torch.manual_seed(cfg.run.seed)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    device = dist_mod.pick_device(d)
    classes = load_classes(cfg)
    if d.main:
        packs = ensure_packs(cfg, classes)
    dist_mod.barrier(d)  # the other ranks wait for rank 0 to pack
    packs = {s: Path(cfg.pack.out_dir) / f"{s}.pack" for s in ("train", "val")}
    for path in packs.values():
        check_pack(path, classes)
    resume = resolve_resume(cfg.train.resume, run_dir)
    state = load_checkpoint(resume) if resume is not None else None
    batch = int(state["settings"]["batch_size"]) if state else cfg.train.batch_size
    s = build_session(cfg, d, device, run_dir, classes=classes, packs=packs, batch_size=batch)
    s.on_batch = on_batch
    if state is not None:
        restore(s, state, resume)
    else:
        _tune_batch(s)
    s.open_train_loader()
    check_position(s)
    try:
        metrics = fit(s)
        if d.main:
            _fit_open_set(s)
        return metrics
    finally:
        s.log.close()


def _fit_open_set(s: Session) -> None:
    """After the last epoch: the gallery of class statistics of best.pt's own weights, and
    the recipe's open-set rule fitted with it, written into best.pt
    (``pillsnap.train.openset``)."""
    open_set = s.cfg.models.classifier.open_set
    path = s.run_dir / "best.pt"
    if open_set.fit_samples == 0 or not path.is_file():
        return
    state = load_checkpoint(path)
    model, _ = classifier_from_checkpoint(state)
    recipe = recipe_of(state)
    rule, gallery = fit_open_set(
        model, s.packs["train"], s.packs["val"], recipe=recipe, device=s.device,
        samples=open_set.fit_samples, tar=open_set.tar, score=open_set.score)
    state["recipe"] = recipe.replace(open_set=rule).to_dict()
    state["gallery"] = gallery_state(gallery)
    save_atomic(state, path)


def probe_step(s: Session) -> Callable[[int], None]:
    """One forward/backward of a noise batch of the given size: what the batch tuner runs."""
    size = s.cfg.models.classifier.image_size

    def step(batch: int) -> None:
        images = torch.randn(batch, 3, size, size, device=s.device).contiguous(
            memory_format=torch.channels_last)
        labels = torch.zeros(batch, dtype=torch.long, device=s.device)
        try:
            loop.train_step(s, images, labels, sync=True)
        finally:  # an out-of-memory backward leaves partial gradients behind
            s.optimizer.zero_grad(set_to_none=True)

    return step


def _tune_batch(s: Session) -> None:
    # The probe batches are noise: keep them out of the BatchNorm statistics.
    saved = {k: v.detach().clone() for k, v in s.model.state_dict().items()}
    tuned = tune_batch(probe_step(s), s.device, s.cfg.train.auto_batch, s.settings.batch_size)
    s.model.load_state_dict(saved)
    if tuned != s.settings.batch_size:
        s.use_settings(replace(s.settings, batch_size=tuned))


def fit(s: Session) -> dict[str, Any]:
    """The epoch loop: train (with OOM recovery), evaluate, checkpoint, advise, stop early."""
    cfg = s.cfg
    started = time.perf_counter()
    first, total = s.epoch, cfg.train.epochs
    # a run resumed mid-epoch trains only the rest of its first epoch: the time cap's pace
    # counts that fraction
    skipped = s.resume_at.batch / s.resume_at.batches if s.resume_at else 0.0
    for epoch in range(first, cfg.train.epochs):
        if epoch >= total:
            break
        oom_before = len(s.oom.history)
        if s.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(s.device)
        stats = _epoch_with_oom_recovery(s, epoch)
        s.epoch = epoch + 1
        if epoch == first and cfg.train.max_minutes is not None:
            total = _time_cap(s, time.perf_counter() - started,
                              epochs_run=epoch + 1 - first - skipped)
        stop = False
        rng = gather_rng(s.dist, s.device)  # every rank's, before rank 0 alone evaluates
        if s.dist.main:
            evaluate_now = (epoch + 1) % cfg.train.eval_every_epochs == 0 \
                or epoch + 1 == total
            if evaluate_now:
                stop = _evaluate_and_save(s, epoch, stats, rng)
            else:
                save_atomic(checkpoint_state(s, rng=rng), s.run_dir / "last.pt")
            _advise(s, epoch, s.oom.history[oom_before:])
        if s.checkpoints is not None:
            s.checkpoints.written()
        if dist_mod.broadcast_flag(s.dist, stop):
            logger.info("early stopping: %s did not improve for %d evaluations",
                        cfg.train.early_stopping.monitor, cfg.train.early_stopping.patience)
            break
    logger.info("training done in %.1f s (%d epochs, %d steps)", time.perf_counter() - started,
                s.epoch, s.step)
    return s.last_metrics


def _time_cap(s: Session, elapsed_s: float, *, epochs_run: float) -> int:
    """``train.max_minutes``: the epochs that fit at the first epoch's pace (rank 0's
    measure for every rank); the schedule is stretched over them. The first epoch's
    evaluation is not timed yet: the estimate leaves it to the budget's slack."""
    cap = float(s.cfg.train.max_minutes or 0.0)
    planned = s.cfg.train.epochs
    total = dist_mod.broadcast_int(s.dist, epochs_that_fit(
        elapsed_s=elapsed_s, epochs_run=epochs_run, epochs_done=s.epoch, planned=planned,
        max_minutes=cap))
    if total < planned:
        s.schedule.epochs = float(total)
        log_cap(logger, "train.epochs", total, planned=planned,
                per_epoch_s=elapsed_s / epochs_run, max_minutes=cap)
    return total


def _epoch_with_oom_recovery(s: Session, epoch: int) -> dict[str, float]:
    while True:
        try:
            return loop.train_epoch(s, epoch)
        except torch.cuda.OutOfMemoryError:
            # The retry starts the epoch at batch 0, a resumed run's too (take_resume hands
            # its position out once): the batch size is about to change, and a position
            # counts in batches of the old size.
            s.optimizer.zero_grad(set_to_none=True)
            apply_oom_step(s)  # raises OutOfMemoryFailure when nothing is left to try
            logger.info("restarting epoch %d after the out-of-memory remedy", epoch)


def apply_oom_step(s: Session) -> str:
    """Take the next OOM remedy, log it (console, file, TensorBoard) and apply it."""
    before = s.settings
    step, after = s.oom.next(before, already_fp16=s.precision.dtype is torch.float16)
    free_memory()
    log_oom_step(step, after, len(s.oom.history))
    s.log.scalars("oom", s.step, {"retry": len(s.oom.history),
                                  "batch_size": after.batch_size,
                                  "grad_accum": after.grad_accum, "fp16": int(after.fp16)})
    s.log.text("oom/step", s.step, step)
    if after.fp16 and not before.fp16:
        if s.device.type == "cuda":
            s.precision = Precision("cuda", torch.float16)
            s.scaler = s.precision.make_scaler()
        else:
            log_decision(logger, "oom.force_fp16", "fp32", "CPU: fp16 autocast does not save "
                         "memory here", fallback=True)
    s.use_settings(after)
    return step


def _evaluate_and_save(s: Session, epoch: int, stats: dict[str, float],
                       rng: list[RngState] | None = None) -> bool:
    """Evaluate (EMA when on), calibrate, write reports and checkpoints; True: stop early."""
    model = loop.eval_model(s)
    logits, labels, val_loss = loop.collect_logits(s, model)
    metrics = summarise(logits, labels, s.classes.k_codes)
    metrics["val_loss"] = val_loss
    metrics.update(calibrate(logits, labels, tar=s.cfg.models.classifier.open_set.tar))
    metrics.update(epoch=epoch, step=s.step, train_loss=stats["loss"])
    s.recipe = calibrated(s.recipe, metrics, s.cfg)
    s.last_metrics = metrics
    record = as_record(metrics)
    logger.info("eval epoch %d: %s", epoch, " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
    s.log.scalars("val", s.step, {k: float(v) for k, v in record.items()})
    (s.run_dir / "eval_report.json").write_text(
        json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    monitor = s.cfg.train.early_stopping.monitor
    value = float(metrics[monitor])
    better = s.best is None or (value > s.best if HIGHER_IS_BETTER[monitor] else value < s.best)
    if better:
        s.best, s.stale_epochs = value, 0
    else:
        s.stale_epochs += 1
    state = checkpoint_state(s, rng=rng)
    save_atomic(state, s.run_dir / "last.pt")
    if better:
        save_atomic(state, s.run_dir / "best.pt")
        logger.info("best.pt: %s=%.4f at epoch %d", monitor, value, epoch)
    patience = s.cfg.train.early_stopping.patience
    return patience > 0 and s.stale_epochs >= patience  # patience 0: never stop early


def _advise(s: Session, epoch: int, oom_steps: list[str]) -> None:
    vram = 0.0
    if s.device.type == "cuda":
        total = torch.cuda.get_device_properties(s.device).total_memory
        vram = cuda_mem_mb(s.device) * 2**20 / total
    monitor = s.cfg.train.early_stopping.monitor
    value = s.last_metrics.get(monitor) if s.last_metrics.get("epoch") == epoch else None
    s.advisor.advise(epoch, oom_steps=oom_steps, vram_fraction=vram, monitor=monitor,
                     value=value, higher_is_better=HIGHER_IS_BETTER[monitor],
                     batch_size=s.settings.batch_size, lr=s.cfg.train.lr,
                     patience=s.cfg.train.early_stopping.patience)
