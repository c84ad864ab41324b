"""Checkpoints that survive a kill: write to a temporary file, fsync, then rename.

``os.replace`` is atomic on POSIX file systems, so ``best.pt``/``last.pt`` is always either
the old complete file or the new complete file, never half of one::

    state = load_checkpoint("runs/exp01/last.pt")
    # resume a run: python -m pillsnap.train train.resume=last
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from pillsnap.errors import PillsnapError


class CheckpointError(PillsnapError):
    """A checkpoint is missing, unreadable or belongs to another class index."""


def save_atomic(state: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to ``path`` so that a crash at any point leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)  # the rename itself must reach the disk too
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint on the CPU (the trainer moves tensors where they belong)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # Our own files hold plain containers, tensors and strings: weights_only is enough.
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    return state


def resolve_resume(resume: str | None, run_dir: Path) -> Path | None:
    """``train.resume``: None, ``last`` (run_dir/last.pt) or a path."""
    if resume is None:
        return None
    path = run_dir / "last.pt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise CheckpointError(f"train.resume={resume}: no checkpoint at {path}")
    return path
