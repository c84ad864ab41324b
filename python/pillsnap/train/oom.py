"""What to do after a CUDA out-of-memory error, one step further each time.

    empty_cache -> force_fp16 -> grad_accum -> halve_batch (repeated) -> a clear failure

The order comes from ``train.oom.steps``; ``train.oom.max_retries`` bounds the attempts
and ``train.oom.min_batch`` the smallest batch. The policy only says what to change; the
trainer applies it and restarts the epoch it was in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from pillsnap.config.schema import OomConfig
from pillsnap.errors import PillsnapError
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


class OutOfMemoryFailure(PillsnapError, RuntimeError):
    """Every out-of-memory remedy was tried; the message says what to change by hand."""


@dataclass(frozen=True)
class Settings:
    """The run settings an OOM step may change."""

    batch_size: int
    grad_accum: int
    fp16: bool  # forced fp16 autocast (smaller activations than fp32; bf16 is the same size)


class OomPolicy:
    """``next(settings)`` -> (step name, new settings) or OutOfMemoryFailure."""

    def __init__(self, cfg: OomConfig) -> None:
        self.cfg = cfg
        self.retries = 0
        self.position = 0
        self.history: list[str] = []

    def next(self, current: Settings, already_fp16: bool = False) -> tuple[str, Settings]:
        steps = self.cfg.steps
        while self.retries < self.cfg.max_retries:
            if self.position < len(steps):
                step = steps[self.position]
                self.position += 1
            elif steps and steps[-1] == "halve_batch":
                step = "halve_batch"  # the last remedy repeats down to oom.min_batch
            else:
                break
            changed = self._apply(step, current, already_fp16)
            if changed is None:
                if self.position >= len(steps) and step == steps[-1]:
                    break  # the batch is at its minimum: nothing left to try
                continue  # this step cannot help (already fp16): try the next one
            self.retries += 1
            self.history.append(step)
            return step, changed
        raise OutOfMemoryFailure(
            f"out of GPU memory after {self.retries} remedies "
            f"({', '.join(self.history) or 'none'}) "
            f"at batch {current.batch_size}, grad_accum {current.grad_accum}: lower "
            "models.classifier.image_size, pick a smaller models.classifier.arch, set "
            "train.grad_checkpointing=true, or free the GPU from other processes")

    def _apply(self, step: str, s: Settings, already_fp16: bool) -> Settings | None:
        if step == "empty_cache":
            return s
        if step == "force_fp16":
            return None if (s.fp16 or already_fp16) else replace(s, fp16=True)
        if step == "grad_accum":
            # One more accumulation step over smaller batches: the same effective batch.
            accum = s.grad_accum + 1
            batch = max(self.cfg.min_batch, s.batch_size * s.grad_accum // accum)
            return None if batch >= s.batch_size else replace(s, grad_accum=accum,
                                                               batch_size=batch)
        if step == "halve_batch":
            batch = max(self.cfg.min_batch, s.batch_size // 2)
            return None if batch >= s.batch_size else replace(s, batch_size=batch)
        raise ValueError(f"unknown OOM step {step!r}")


def free_memory() -> None:
    """Drop cached blocks so the retry starts from what is really in use."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def log_oom_step(step: str, settings: Settings, retry: int) -> None:
    log_decision(logger, "oom", step, f"retry {retry}: batch={settings.batch_size} "
                 f"grad_accum={settings.grad_accum} fp16={settings.fp16}", fallback=True)
