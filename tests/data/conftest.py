"""A tiny synthetic AIHub dataset, generated once per test session (read-only for tests)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pillsnap.data.synth import SynthSpec, generate

TINY = SynthSpec(classes=10, train_per_class=4, val_per_class=2, combo_train=5, combo_val=3,
                 width=244, height=320, seed=7)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "aihub"
    generate(root, TINY, workers=1)
    return root


@pytest.fixture
def synth_copy(synth_root: Path, tmp_path: Path) -> Path:
    """A private copy a test may damage."""
    root = tmp_path / "aihub"
    shutil.copytree(synth_root, root)
    return root


def _read_truth(root: Path) -> dict[str, dict]:
    lines = (root / "synth_truth.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["path"]: row for row in map(json.loads, lines)}


@pytest.fixture(scope="session")
def read_truth() -> Callable[[Path], dict[str, dict]]:
    """What the generator drew: image path -> split, kind and pills."""
    return _read_truth
