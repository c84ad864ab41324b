"""Exponential moving average of the weights (timm ModelEmaV3) with a linear decay warm-up.

Early in a run the average would mostly remember random initial weights; ramping the
decay from 0 to ``train.ema.decay`` over ``train.ema.warmup_steps`` optimiser steps keeps
the EMA close to the model until there is a history worth averaging.
"""

from __future__ import annotations

import torch
from timm.utils import ModelEmaV3

from pillsnap.config.schema import EmaConfig


class WarmupEma(ModelEmaV3):  # type: ignore[misc]
    def __init__(self, model: torch.nn.Module, cfg: EmaConfig) -> None:
        super().__init__(model, decay=cfg.decay)
        self.warmup_steps = cfg.warmup_steps

    def get_decay(self, step: int | None = None) -> float:
        if step is None or self.warmup_steps == 0:
            return float(self.decay)
        return float(self.decay) * min(1.0, step / self.warmup_steps)


def make_ema(model: torch.nn.Module, cfg: EmaConfig) -> WarmupEma | None:
    return WarmupEma(model, cfg) if cfg.enabled else None
