"""Checkpoints inside an epoch: a crash, an OOM kill or a WSL2 restart loses minutes, not an
epoch of hours.

    python -m pillsnap.train train.checkpoint_every_minutes=20    # the default
    python -m pillsnap.train train.resume=last                    # after a kill: next batch

``train.checkpoint_every_minutes`` (0: off) rewrites ``last.pt`` when that long has passed
since the last write (mid-epoch or end of epoch); ``train.checkpoint_every_steps`` (0: off)
every N optimiser steps, where the same run must checkpoint at the same steps every time
(tests, short runs). Either way the write comes right after an optimiser step, never
between accumulation micro-steps, and holds the loader's position (``run_state``).
``best.pt`` stays per epoch: it needs an evaluation.

Under DDP every rank takes part (each rank's random states are gathered) and rank 0 writes.
The step trigger needs no talk between ranks; the clock is rank 0's, shared every
``logging.log_every_steps`` steps, where the step line already waits for the GPU, rather
than after every step, which would stall the host on each one.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pillsnap.config.schema import PillsnapConfig
from pillsnap.train import distributed as dist_mod
from pillsnap.train.checkpoint import save_atomic
from pillsnap.train.distributed import Dist
from pillsnap.train.run_state import Position, checkpoint_state, gather_rng

if TYPE_CHECKING:
    from pillsnap.train.session import Session

logger = logging.getLogger("pillsnap.train")


class MidEpochCheckpoints:
    """``due(step)`` after each optimiser step (same answer on every rank), ``save``."""

    def __init__(self, cfg: PillsnapConfig, d: Dist) -> None:
        self.minutes = float(cfg.train.checkpoint_every_minutes)
        self.steps = int(cfg.train.checkpoint_every_steps)
        self.share_every = max(cfg.logging.log_every_steps, 1)
        self.dist = d
        self.since = time.monotonic()

    @property
    def enabled(self) -> bool:
        return self.minutes > 0 or self.steps > 0

    def written(self) -> None:
        """last.pt was just written (here or at the end of an epoch): the clock restarts."""
        self.since = time.monotonic()

    def due(self, step: int) -> bool:
        if self.steps and step % self.steps == 0:
            return True
        if not self.minutes:
            return False
        if self.dist.enabled and step % self.share_every:
            return False
        late = time.monotonic() - self.since >= self.minutes * 60.0
        return dist_mod.broadcast_flag(self.dist, late) if self.dist.enabled else late

    def save(self, s: Session, position: Position) -> None:
        """last.pt at ``position`` (every rank calls it; rank 0 writes), one log line."""
        started = time.perf_counter()
        rng = gather_rng(s.dist, s.device)
        if s.dist.main:
            save_atomic(checkpoint_state(s, rng=rng, position=position), s.run_dir / "last.pt")
            logger.info("mid-epoch checkpoint: last.pt at epoch %d batch %d/%d, step %d "
                        "(%.2f s)", position.epoch, position.batch, position.batches, s.step,
                        time.perf_counter() - started)
        self.written()
