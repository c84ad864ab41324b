"""Step and epoch metrics to the console, the run's train.log and TensorBoard.

Both get the same ``step N epoch E loss=...`` lines. The training loop's tqdm bar is extra,
for a terminal only: it is off when stderr is not a TTY and never reaches a log file.

    tensorboard --logdir runs/     # after: python -m pillsnap.train
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("pillsnap.train")


def cuda_mem_mb(device: torch.device) -> float:
    """Peak allocated GPU memory in MB since the last reset; 0 on the CPU."""
    if device.type != "cuda":
        return 0.0
    return torch.cuda.max_memory_allocated(device) / 2**20


class MetricLog:
    """Writes scalars to TensorBoard (when enabled, rank 0 only) and lines to the log."""

    def __init__(self, run_dir: Path, tensorboard: bool, enabled: bool = True) -> None:
        self.enabled = enabled
        self.writer: Any = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir))

    def step(self, step: int, epoch: int, values: dict[str, float]) -> str:
        """One step line: the same numbers in train.log and under ``train/`` in TensorBoard."""
        line = f"step {step} epoch {epoch} " + " ".join(
            f"{k}={_fmt(v)}" for k, v in values.items())
        if self.enabled:
            logger.info("%s", line)
            self.scalars("train", step, values)
        return line

    def scalars(self, prefix: str, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def text(self, tag: str, step: int, text: str) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"
