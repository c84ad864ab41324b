"""Holding K-codes out of training: ``data.include_k_codes`` / ``data.exclude_k_codes``, and the
pack and the trainer's inputs that follow them.

    python -m pytest tests/data/test_training_classes.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pillsnap.config import load_config
from pillsnap.data import ClassIndex
from pillsnap.data.classes import training_classes
from pillsnap.data.pack import build_pack
from pillsnap.data.scan import scan
from pillsnap.errors import ConfigError, DataError
from pillsnap.native import _native
from pillsnap.train.inputs import check_pack, load_classes


@pytest.fixture(scope="module")
def manifest(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifest")
    scan(synth_root, out, workers=1)
    return out


def _cfg(manifest: Path, *overrides: str):  # type: ignore[no-untyped-def]
    return load_config(None, [f"data.manifest_dir={manifest}", *overrides], env_file=None,
                       environ={})


def test_excluded_k_codes_are_left_out_in_the_index_s_order(
        manifest: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = ClassIndex.load(manifest)
    held = [index.k_codes[1], index.k_codes[4]]
    cfg = _cfg(manifest, f"data.exclude_k_codes=[{','.join(held)}]")
    with caplog.at_level("INFO"):
        chosen = training_classes(cfg)
    assert chosen.k_codes == tuple(c for c in index.k_codes if c not in held)
    assert chosen.hash != index.hash
    assert "decision: classes=8 of 10" in caplog.text
    assert load_classes(cfg) == chosen  # what the trainer trains
    only = training_classes(_cfg(manifest, f"data.include_k_codes=[{index.k_codes[3]},"
                                           f"{index.k_codes[0]}]"))
    assert only.k_codes == (index.k_codes[0], index.k_codes[3])
    assert training_classes(_cfg(manifest)) == index  # neither list: the whole index


def test_a_pack_of_the_training_classes_leaves_the_held_out_pills_out(
        manifest: Path, synth_root: Path, tmp_path: Path) -> None:
    index = ClassIndex.load(manifest)
    held = index.k_codes[1]
    chosen = training_classes(_cfg(manifest, f"data.exclude_k_codes=[{held}]"))
    report = build_pack(manifest, synth_root, tmp_path / "train.pack", split="train",
                        short_side=48, region="pill", workers=1, classes=chosen)
    full = build_pack(manifest, synth_root, tmp_path / "full.pack", split="train",
                      short_side=48, region="pill", workers=1)
    assert report["records"] < full["records"] and report["unknown_class_pills"] > 0
    labels = set(_native.PackReader(str(tmp_path / "train.pack")).labels())
    assert labels == set(range(len(chosen)))  # labels are ids of the narrowed index
    check_pack(tmp_path / "train.pack", chosen)
    with pytest.raises(DataError, match="repack it"):
        check_pack(tmp_path / "full.pack", chosen)  # a pack of the old index is refused


def test_the_pack_command_follows_the_config(manifest: Path, synth_root: Path,
                                             tmp_path: Path) -> None:
    held = ClassIndex.load(manifest).k_codes[2]
    done = subprocess.run(
        [sys.executable, "-m", "pillsnap.data", "pack", "--manifest", str(manifest), "--root",
         str(synth_root), "--out", str(tmp_path), "--split", "train", "--no-yolo",
         "pack.short_side=48", "pack.workers=1", f"data.exclude_k_codes=[{held}]"],
        check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    header = _native.PackReader(str(tmp_path / "train.pack")).header()
    assert header["class_hash"] == training_classes(
        _cfg(manifest, f"data.exclude_k_codes=[{held}]")).hash


def test_mistakes_in_the_lists_are_clear(manifest: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match="include_k_codes names K-codes the class index does "
                                          "not have: K-999999"):
        training_classes(_cfg(manifest, "data.include_k_codes=[K-999999]"))
    index = ClassIndex.load(manifest)
    with caplog.at_level("INFO"):  # excluded anyway: a stage's index may lack it
        assert training_classes(_cfg(manifest, "data.exclude_k_codes=[K-999999]")) == index
    assert "decision: data.exclude_k_codes=1 not in the index" in caplog.text
    with pytest.raises(ConfigError, match="leave no class"):
        training_classes(_cfg(manifest, f"data.include_k_codes=[{index.k_codes[0]}]",
                              f"data.exclude_k_codes=[{index.k_codes[0]}]"))
    with pytest.raises(ConfigError, match="exclude_k_codes"):  # not a K-code at all
        _cfg(manifest, "data.exclude_k_codes=[K-12]")
