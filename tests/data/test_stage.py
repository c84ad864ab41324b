"""Progressive stage subsets: stratified, deterministic, consistent with the class index."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pillsnap.data import ClassIndex, read_manifest
from pillsnap.data.scan import scan
from pillsnap.data.stage import STAGES, allocate, make_stage


@pytest.fixture(scope="module")
def manifest(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifest")
    scan(synth_root, out, workers=1)
    return out


def test_allocate_fills_equal_shares_and_spills_short_classes() -> None:
    take = allocate({"a": 2, "b": 10, "c": 10}, 15)
    assert take["a"] == 2 and sum(take.values()) == 15
    assert abs(take["b"] - take["c"]) <= 1
    assert allocate({"a": 3, "b": 4}, 100) == {"a": 3, "b": 4}


def test_stage_sizes_from_the_spec() -> None:
    assert (STAGES[1].images, STAGES[1].classes) == (5_000, 50)
    assert (STAGES[4].images, STAGES[4].classes) == (500_000, 4_523)


def test_same_seed_same_subset(manifest: Path, tmp_path: Path) -> None:
    make_stage(manifest, tmp_path / "a", seed=3, images=12, n_classes=4)
    make_stage(manifest, tmp_path / "b", seed=3, images=12, n_classes=4)
    make_stage(manifest, tmp_path / "c", seed=4, images=12, n_classes=4)
    a, b, c = ((tmp_path / d / "manifest.jsonl").read_bytes() for d in "abc")
    assert a == b
    assert a != c


def test_subset_is_stratified_and_uses_the_official_val(manifest: Path, tmp_path: Path) -> None:
    report = make_stage(manifest, tmp_path, seed=1, images=12, n_classes=4)
    rows = list(read_manifest(tmp_path))
    chosen = ClassIndex.load(tmp_path)
    parent = ClassIndex.load(manifest)
    assert len(chosen) == 4
    assert [c for c in parent.k_codes if c in chosen] == list(chosen.k_codes)  # parent order
    per_class = Counter(r.k_codes[0] for r in rows if r.split == "train" and r.kind == "single")
    assert sorted(per_class.values()) == [3, 3, 3, 3]
    val = [r for r in rows if r.split == "val"]
    assert val and all(set(r.k_codes) <= set(chosen.k_codes) for r in val)
    all_val = [r for r in read_manifest(manifest)
               if r.split == "val" and r.kind == "single" and r.k_codes[0] in chosen]
    assert len([r for r in val if r.kind == "single"]) == len(all_val)
    assert report["taken"]["train_single"] == 12
    saved = json.loads((tmp_path / "stage_report.json").read_text(encoding="utf-8"))
    assert saved["taken"] == report["taken"]
    assert set(json.loads((tmp_path / "drugs.json").read_text(encoding="utf-8"))) == \
        set(chosen.k_codes)


def test_stage_larger_than_the_data_takes_everything(manifest: Path, tmp_path: Path) -> None:
    report = make_stage(manifest, tmp_path, stage=1, seed=0)
    assert report["taken"]["classes"] == report["available"]["classes"]
    assert report["taken"]["train_single"] == report["available"]["train_single"]
