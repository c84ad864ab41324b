"""One training epoch and one evaluation pass (nanoGPT-style: plain, readable, no hooks).

``train_step`` is a module-level function on purpose: tests replace it to inject faults
(a CUDA out-of-memory error) without touching the rest of the loop.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pillsnap.data.prefetch import DevicePrefetcher
from pillsnap.train.run_state import Position
from pillsnap.train.session import Session
from pillsnap.train.steplog import cuda_mem_mb

logger = logging.getLogger(__name__)


def train_step(s: Session, images: torch.Tensor, labels: torch.Tensor, sync: bool) -> torch.Tensor:
    """Forward and backward of one batch; gradients accumulate until ``optimizer_step``.

    ``sync=False`` skips the DDP gradient all-reduce on accumulation micro-steps.
    """
    no_sync = s.ddp.no_sync() if (s.ddp is not None and not sync) else contextlib.nullcontext()
    with no_sync:
        with s.precision.autocast():
            logits = s.forward(images)
            loss = s.criterion(logits.float(), labels)
        s.scaler.scale(loss / s.settings.grad_accum).backward()
    return loss.detach()


def optimizer_step(s: Session, progress: float) -> float:
    """Clip, step (through the GradScaler), clear gradients, update the EMA; returns the lr."""
    lr = s.schedule.set(progress)
    clip = s.cfg.train.clip_grad_norm
    if clip is not None:
        s.scaler.unscale_(s.optimizer)
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), clip)
    s.scaler.step(s.optimizer)
    s.scaler.update()
    s.optimizer.zero_grad(set_to_none=True)  # frees gradient memory until the next backward
    s.step += 1
    if s.ema is not None:
        s.ema.update(s.model, step=s.step)
    return lr


Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


def train_epoch(s: Session, epoch: int,
                batches: DevicePrefetcher | Batches | None = None) -> dict[str, float]:
    """One pass over this rank's shard; step lines every ``logging.log_every_steps``.

    ``batches`` replaces the session's loader (any sized iterable of device batches): the
    training benchmark feeds batches already on the GPU through the same loop. Returns the
    epoch's loss and its totals of data and compute time.

    With the session's own loader, a resumed mid-epoch position starts the epoch at its
    batch, and mid-epoch checkpoints are written (``pillsnap.train.midepoch``).
    """
    s.model.train()
    position, own = None, batches is None
    if batches is None:
        position = s.take_resume(epoch)
        batches = s.batches(epoch, position.batch if position is not None else 0)
    total = len(batches)
    # The bar is for a person at a terminal: disable=None turns it off when stderr is not a
    # TTY (nohup, `2>&1 | tee`, CI), where its carriage-return redraws would pile up in the
    # captured file as one long line; the step lines carry the same numbers there.
    with (tqdm(total=total, initial=position.batch if position is not None else 0,
               desc=f"epoch {epoch}", unit="batch",
               disable=None if s.dist.main else True, leave=False) as bar,
          _console_lines_above(bar)):
        return _run_batches(s, epoch, batches, total, bar, position=position,
                            checkpoints=own)


@contextlib.contextmanager
def _console_lines_above(bar: tqdm) -> Iterator[None]:
    """While a live bar is on the terminal, console log lines are printed above it (through
    ``tqdm.write``) instead of being glued to its last redraw; file handlers are untouched."""
    if bar.disable:
        yield
        return
    with logging_redirect_tqdm():
        yield


def _run_batches(s: Session, epoch: int, batches: DevicePrefetcher | Batches, total: int,
                 bar: tqdm, *, position: Position | None = None,
                 checkpoints: bool = False) -> dict[str, float]:
    accum, every = s.settings.grad_accum, s.cfg.logging.log_every_steps
    p = position if position is not None else Position(epoch, 0, total, 0, 0, 0)
    # A resumed epoch carries on the sums the killed run had: the same step lines follow.
    window: dict[str, Any] = {"data": 0.0, "compute": 0.0, "images": p.window_images,
                              "n": p.window_batches,
                              "loss": torch.tensor(p.window_loss, device=s.device)}
    epoch_loss = torch.tensor(p.epoch_loss, device=s.device)
    epoch_n = p.epoch_batches
    totals = {"data_time": 0.0, "compute_time": 0.0, "images": 0}
    saver = s.checkpoints if checkpoints and s.checkpoints is not None \
        and s.checkpoints.enabled else None
    tick = time.perf_counter()
    for i, (images, labels) in enumerate(batches, start=p.batch):
        started = time.perf_counter()
        window["data"] += started - tick
        totals["data_time"] += started - tick
        if s.on_batch is not None:
            s.on_batch(images, labels)
        last_micro = (i + 1) % accum == 0 or i + 1 == total
        loss = train_step(s, images, labels, sync=last_micro)
        epoch_loss += loss
        epoch_n += 1
        window["loss"] += loss  # a device tensor: no host sync until the step line
        window["images"] += images.shape[0]
        window["n"] += 1
        if last_micro:
            lr = optimizer_step(s, epoch + (i + 1) / total)
        tick = time.perf_counter()
        window["compute"] += tick - started
        totals["compute_time"] += tick - started
        totals["images"] += images.shape[0]
        if last_micro and s.step % every == 0:
            _log_window(s, epoch, lr, window)
        if saver is not None and last_micro and i + 1 < total and saver.due(s.step):
            saver.save(s, Position(
                epoch, i + 1, total, s.settings.batch_size, accum, s.dist.world,
                float(epoch_loss), epoch_n, float(window["loss"]), window["n"],
                window["images"]))
        bar.update(1)
    return {"loss": float(epoch_loss) / max(epoch_n, 1), "batches": epoch_n, **totals}


def _log_window(s: Session, epoch: int, lr: float, w: dict[str, Any]) -> None:
    if s.device.type == "cuda":
        torch.cuda.synchronize(s.device)  # compute_time means finished work, not queued work
    seconds = w["data"] + w["compute"]
    s.log.step(s.step, epoch, {
        "loss": float(w["loss"]) / max(w["n"], 1), "lr": lr, "data_time": w["data"],
        "compute_time": w["compute"], "throughput": w["images"] / seconds if seconds else 0.0,
        "cuda_mem": cuda_mem_mb(s.device)})
    w.update(data=0.0, compute=0.0, images=0.0, n=0, loss=torch.zeros((), device=s.device))


@torch.no_grad()
def collect_logits(s: Session, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Validation logits (float32, CPU), labels and the mean cross-entropy."""
    model.eval()
    outputs, targets = [], []
    for images, labels in s.val_batches():
        with s.precision.autocast():
            outputs.append(model(images).float().cpu())
        targets.append(labels.cpu())
    model.train()
    logits, labels = torch.cat(outputs), torch.cat(targets)
    return logits, labels, float(F.cross_entropy(logits, labels))


def eval_model(s: Session) -> torch.nn.Module:
    """The EMA weights when enabled (they evaluate and serve better), else the model."""
    return s.ema.module if s.ema is not None else s.model
