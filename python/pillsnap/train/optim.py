"""The optimiser (AdamW fused on CUDA) and a step-wise learning-rate schedule.

The schedule is a pure function of training progress in epochs (``epoch + batch/len``),
not of a step count: the OOM handler may change the batch size mid-run and a resumed run
may have another number of steps per epoch, and the curve must not jump either way.
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any

import torch

from pillsnap.config.schema import TrainConfig
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # Norm weights and biases are not decayed: decaying them only hurts (timm does the same).
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, train: TrainConfig,
                   device: torch.device) -> torch.optim.Optimizer:
    """AdamW (fused kernel on CUDA, else foreach) or SGD with Nesterov momentum."""
    groups = _param_groups(model, train.weight_decay)
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=0.9, nesterov=True)
    fused_ok = device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
    if fused_ok:
        log_decision(logger, "optimizer", "adamw-fused", "CUDA: one fused kernel per step")
        return torch.optim.AdamW(groups, lr=train.lr, fused=True)
    log_decision(logger, "optimizer", "adamw-foreach", f"no fused AdamW on {device.type}: "
                 "multi-tensor foreach kernels")  # nothing asks for fused: a decision
    return torch.optim.AdamW(groups, lr=train.lr, foreach=True)


def scaled_lr(train: TrainConfig, global_batch: int) -> float:
    """``train.lr`` for a global batch of ``global_batch`` images per optimiser step.

    ``train.lr`` is tuned for the configured batch, ``batch_size x grad_accum`` on one
    process; a different batch keeps the update's noise scale under ``train.lr_scaling``:
    sqrt for Adam-type optimisers (Malladi et al., 2022), linear for SGD (Goyal et al., 2017).
    """
    ratio = global_batch / (train.batch_size * train.grad_accum)
    if train.lr_scaling == "none" or ratio == 1.0:
        return train.lr
    return train.lr * (ratio if train.lr_scaling == "linear" else math.sqrt(ratio))


class Schedule:
    """Warmup then cosine to ``final`` x lr, or one-cycle; ``set(progress)`` writes the lr."""

    def __init__(self, optimizer: torch.optim.Optimizer, train: TrainConfig,
                 final: float = 0.01) -> None:
        self.optimizer = optimizer
        self.kind = train.scheduler
        self.base_lr = train.lr
        self.epochs = float(train.epochs)
        self.warmup = min(train.warmup_epochs, self.epochs)
        self.final = final
        self.last_lr = 0.0

    def lr_at(self, progress: float) -> float:
        """The learning rate ``progress`` epochs into the run."""
        if self.kind == "onecycle":
            return self._onecycle(progress)
        if self.warmup > 0 and progress < self.warmup:
            return self.base_lr * max(progress, 1e-3 * self.warmup) / self.warmup
        span = max(self.epochs - self.warmup, 1e-9)
        t = min(max((progress - self.warmup) / span, 0.0), 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * t))
        return self.base_lr * (self.final + (1.0 - self.final) * cosine)

    def _onecycle(self, progress: float) -> float:
        # OneCycle: rise from lr/25 over the warm-up (30% of the run when no warm-up is set),
        # then cosine down to lr/1e4, like torch's OneCycleLR.
        peak = self.warmup if self.warmup > 0 else 0.3 * self.epochs
        start, end = self.base_lr / 25.0, self.base_lr / 1e4
        if progress < peak:
            t = progress / peak
            return start + (self.base_lr - start) * 0.5 * (1.0 - math.cos(math.pi * t))
        t = min((progress - peak) / max(self.epochs - peak, 1e-9), 1.0)
        return end + (self.base_lr - end) * 0.5 * (1.0 + math.cos(math.pi * t))

    def set(self, progress: float) -> float:
        self.last_lr = self.lr_at(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = self.last_lr
        return self.last_lr

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_lr": self.base_lr, "epochs": self.epochs,
                "warmup": self.warmup, "final": self.final, "last_lr": self.last_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # The config of the resumed run wins (a user may extend epochs); keep the last lr.
        self.last_lr = float(state.get("last_lr", 0.0))
