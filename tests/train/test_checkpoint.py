"""Checkpoint files: a failed or killed write never leaves a broken best.pt/last.pt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from pillsnap.train import checkpoint
from pillsnap.train.checkpoint import CheckpointError, load_checkpoint, resolve_resume, save_atomic


def test_failed_write_leaves_the_old_checkpoint_intact(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_atomic({"epoch": 1, "w": torch.ones(3)}, tmp_path / "last.pt")
    real_save = torch.save

    def dies_midway(obj: Any, fh: Any, *args: Any, **kwargs: Any) -> None:
        fh.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the file, then it dies
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", dies_midway)
    with pytest.raises(OSError, match="No space left"):
        save_atomic({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_resume_last_needs_a_checkpoint(tmp_path: Path) -> None:
    assert resolve_resume(None, tmp_path) is None
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_resume("last", tmp_path)
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    assert resolve_resume("last", tmp_path) == tmp_path / "last.pt"
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "last.pt")
