"""What a classifier checkpoint holds and how a run continues from one.

    python -m pillsnap.train train.resume=last     # continue run.out_dir/run.name/last.pt

A checkpoint holds everything the run's next step depends on: weights, EMA, optimiser,
schedule, GradScaler, counters, the random states of every rank (python, numpy, torch,
CUDA) and, when it was written inside an epoch, the loader's ``position``: the next batch
of that epoch, with the batch size, accumulation and process count it counts in. The
loader's order is a function of (seed, epoch, index), so a resumed run starts the epoch at
that batch and, on the same machine in deterministic mode, takes the very steps the killed
run would have taken.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from pillsnap.config import to_yaml
from pillsnap.logs import log_decision
from pillsnap.train.checkpoint import CheckpointError
from pillsnap.train.distributed import Dist
from pillsnap.train.metrics import as_record
from pillsnap.train.recipe import recipe_of

if TYPE_CHECKING:
    from pillsnap.train.session import Session

logger = logging.getLogger("pillsnap.train")

RngState = dict[str, Any]


@dataclass(frozen=True)
class Position:
    """Where inside an epoch a checkpoint was taken (always after an optimiser step), and
    the running sums the epoch's loss and the next step line carry on from."""

    epoch: int
    batch: int  # the next batch of the epoch to train; every rank is at the same one
    batches: int  # batches per epoch per rank when it was taken
    batch_size: int
    grad_accum: int
    world: int
    epoch_loss: float = 0.0  # sum of the epoch's batch losses so far
    epoch_batches: int = 0
    window_loss: float = 0.0  # sum of the losses since the last step line
    window_batches: int = 0
    window_images: float = 0.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Position:
        return cls(**values)

    def mismatch(self, *, batches: int, batch_size: int, grad_accum: int, world: int) -> str:
        """Why this position cannot be continued by a run of that shape ("" when it can)."""
        now = (batches, batch_size, grad_accum, world)
        then = (self.batches, self.batch_size, self.grad_accum, self.world)
        if now == then:
            return ""
        return (f"it was taken at {self.batches} batches of {self.batch_size} x "
                f"{self.grad_accum} accumulated on {self.world} processes; this run has "
                f"{batches} of {batch_size} x {grad_accum} on {world}")


def rng_state(device: torch.device) -> RngState:
    """This process's random states; plain lists and tensors, so weights_only loads them."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state: RngState = {"python": random.getstate(), "torch": torch.get_rng_state(),
                       "numpy": [kind, keys.tolist(), pos, has_gauss, gauss]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: RngState, device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_rng(d: Dist, device: torch.device) -> list[RngState]:
    """Every rank's random states, rank by rank (a collective: every rank must call it)."""
    mine = rng_state(device)
    if not d.enabled:
        return [mine]
    states: list[Any] = [None] * d.world
    dist.all_gather_object(states, mine)
    return states


def checkpoint_state(s: Session, *, rng: list[RngState] | None = None,
                     position: Position | None = None) -> dict[str, Any]:
    """Everything a resume or an export needs (README: Training). ``epoch`` is the last
    finished epoch; ``position`` says where inside the next one a mid-epoch save was."""
    return {
        "format": 1, "model": s.model.state_dict(),
        "ema": s.ema.module.state_dict() if s.ema is not None else None,
        "optimizer": s.optimizer.state_dict(), "scheduler": s.schedule.state_dict(),
        "scaler": s.scaler.state_dict(), "epoch": s.epoch - 1, "step": s.step,
        "best": {"monitor": s.cfg.train.early_stopping.monitor, "value": s.best,
                 "stale_epochs": s.stale_epochs},
        "settings": {"batch_size": s.settings.batch_size, "grad_accum": s.settings.grad_accum,
                     "fp16": s.settings.fp16},
        "config": to_yaml(s.cfg), "arch": s.cfg.models.classifier.arch,
        "image_size": s.cfg.models.classifier.image_size,
        "classes": {"k_codes": list(s.classes.k_codes), "hash": s.classes.hash},
        "recipe": s.recipe.to_dict(),
        "metrics": as_record(s.last_metrics),
        "rng": rng,
        "position": asdict(position) if position is not None else None,
    }


def restore(s: Session, state: dict[str, Any], path: Path | None) -> None:
    """Continue a run from ``state``: weights, EMA, optimiser, schedule, scaler, counters,
    random states and, for a mid-epoch checkpoint, the position inside the epoch."""
    if state["classes"]["hash"] != s.classes.hash:
        raise CheckpointError(f"{path} was trained on class index {state['classes']['hash']}, "
                              f"but {s.classes.hash} is loaded")
    s.model.load_state_dict(state["model"])
    if s.ema is not None and state.get("ema") is not None:
        s.ema.module.load_state_dict(state["ema"])
    s.optimizer.load_state_dict(state["optimizer"])
    s.schedule.load_state_dict(state["scheduler"])
    s.scaler.load_state_dict(state["scaler"])
    s.epoch, s.step = int(state["epoch"]) + 1, int(state["step"])
    s.best = state["best"]["value"]
    s.stale_epochs = int(state["best"].get("stale_epochs", 0))
    s.recipe = recipe_of(state)
    grad_accum = int(state["settings"]["grad_accum"])
    if grad_accum != s.settings.grad_accum:
        s.use_settings(replace(s.settings, grad_accum=grad_accum))
    _restore_rng(s, state.get("rng"))
    where = f"epoch {s.epoch}"
    if state.get("position") is not None:
        s.resume_at = Position.from_dict(state["position"])
        s.epoch = s.resume_at.epoch
        where = f"epoch {s.epoch} batch {s.resume_at.batch}/{s.resume_at.batches}"
    log_decision(logger, "resume", path, f"continuing at {where}, step {s.step}")


def _restore_rng(s: Session, states: list[RngState] | None) -> None:
    """This rank's saved random states; a checkpoint without them (older, or from fewer
    processes) leaves the seeded ones, said in one line."""
    rank = s.dist.rank
    if states and rank < len(states):
        set_rng_state(states[rank], s.device)
        return
    saved = f"states of {len(states)} processes" if states else "no random states"
    log_decision(logger, "resume.rng", f"run.seed+{rank}", f"the checkpoint holds {saved}: "
                 "this process draws dropout from its seed, not from where the run was")


def check_position(s: Session) -> None:
    """Keep a resumed mid-epoch position only if this run counts batches the same way; else
    the epoch restarts at batch 0 (one fallback line), never at a wrong sample."""
    p = s.resume_at
    if p is None or s.train_loader is None:
        return
    why = p.mismatch(batches=len(s.train_loader), batch_size=s.settings.batch_size,
                     grad_accum=s.settings.grad_accum, world=s.dist.world)
    if why:
        log_decision(logger, "resume.position", f"epoch {p.epoch} batch 0",
                     f"cannot continue at batch {p.batch}: {why}; the epoch restarts",
                     fallback=True)
        s.resume_at = None  # s.epoch is already the position's epoch: it runs whole
