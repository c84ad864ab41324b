"""Scanning an AIHub tree: every pill of every image comes back with its own K-code and box."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pillsnap.data import ClassIndex, load_drugs, read_manifest
from pillsnap.data.aihub import split_edi
from pillsnap.data.scan import scan
from pillsnap.errors import DataError

Truth = Callable[[Path], dict[str, dict]]


def test_round_trip_against_the_generator_truth(synth_root: Path, tmp_path: Path,
                                                read_truth: Truth) -> None:
    result = scan(synth_root, tmp_path / "m", workers=1)
    truth = read_truth(synth_root)
    rows = {r.path: r for r in read_manifest(tmp_path / "m")}
    assert set(rows) == set(truth)
    for path, want in truth.items():
        row = rows[path]
        assert (row.split, row.kind) == (want["split"], want["kind"])
        got = sorted((p.k_code, tuple(p.bbox)) for p in row.pills)
        assert got == sorted((p["k_code"], tuple(map(float, p["bbox"]))) for p in want["pills"])
    assert result.report["images"] == len(truth)
    assert result.report["pills"] == sum(len(t["pills"]) for t in truth.values())


def test_combination_images_keep_every_pill_code(synth_root: Path) -> None:
    rows = [r for r in scan(synth_root, None, workers=1).rows if r.kind == "combo"]
    assert rows
    for row in rows:
        folder = Path(row.path).parent.name
        codes = row.k_codes
        assert len(codes) >= 2 and len(set(codes)) == len(codes)
        assert set(codes) == {f"K-{n}" for n in folder[2:].split("-")}


def test_official_validation_split_comes_from_vs_vl(synth_root: Path, read_truth: Truth) -> None:
    result = scan(synth_root, None, workers=1)
    for row in result.rows:
        source = row.path.split("/")[-3]
        assert row.split == ("val" if source.startswith("VS_") else "train")
    truth = Counter(t["split"] for t in read_truth(synth_root).values())
    assert result.report["splits"] == dict(truth)


def test_drug_table_keeps_every_edi_code(synth_root: Path, tmp_path: Path) -> None:
    scan(synth_root, tmp_path, workers=1)
    drugs = load_drugs(tmp_path)
    catalog = json.loads((synth_root / "synth_catalog.json").read_text(encoding="utf-8"))
    several = 0
    for drug in catalog:
        entry = drugs[drug["dl_mapping_code"]]
        codes = split_edi(drug["di_edi_code"])
        assert entry["edi_codes"] == codes
        assert entry["edi_code"] == (codes[0] if codes else None)
        assert entry["name_ko"] == drug["dl_name"] and entry["shape"] == drug["drug_shape"]
        several += len(codes) > 1
    assert several >= 1  # the catalogue has drugs with two EDI codes


def test_class_index_is_saved_and_extended_not_reordered(synth_root: Path, tmp_path: Path) -> None:
    first = scan(synth_root, tmp_path, workers=1).classes
    assert list(first.k_codes) == sorted(first.k_codes)
    assert ClassIndex.load(tmp_path) == first
    # An index saved earlier keeps its order; new codes go to the end.
    older = ClassIndex(tuple(reversed(first.k_codes[1:])))
    older.save(tmp_path)
    again = scan(synth_root, tmp_path, workers=1).classes
    assert again.k_codes[: len(older)] == older.k_codes
    assert set(again.k_codes) == set(first.k_codes)
    assert scan(synth_root, tmp_path, workers=1, rebuild_classes=True).classes == first


def test_edited_class_index_is_refused(synth_root: Path, tmp_path: Path) -> None:
    scan(synth_root, tmp_path, workers=1)
    data = json.loads((tmp_path / "classes.json").read_text())
    data["k_codes"].reverse()
    (tmp_path / "classes.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="does not match"):
        ClassIndex.load(tmp_path)


def test_parallel_scan_equals_serial(synth_root: Path) -> None:
    serial = scan(synth_root, None, workers=1)
    parallel = scan(synth_root, None, workers=2)
    assert [r.to_json() for r in serial.rows] == [r.to_json() for r in parallel.rows]


def _single_images(root: Path) -> list[Path]:
    return sorted(root.glob("1.Training/*/TS_*_단일/*/*.png"))


def _label_of(image: Path) -> Path:
    ts = image.parents[1]
    tl = ts.parents[1] / "라벨링데이터" / ts.name.replace("TS_", "TL_", 1)
    return tl / f"{image.parent.name}_json" / f"{image.stem}.json"


def test_dirty_data_is_counted_never_fatal(synth_copy: Path, tmp_path: Path,
                                           read_truth: Truth) -> None:
    singles = _single_images(synth_copy)
    garbage, truncated, unlabelled, label_broken, imageless = singles[:5]
    garbage.write_bytes(b"this is not a png")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    _label_of(unlabelled).unlink()
    _label_of(label_broken).write_text('{"images": [ {"file_name": ', encoding="utf-8")
    imageless.unlink()

    result = scan(synth_copy, tmp_path / "m", workers=1)
    report = json.loads((tmp_path / "m" / "scan_report.json").read_text(encoding="utf-8"))
    assert report["unreadable_images"] == 2
    assert report["orphan_images"] == 1
    assert report["broken_json"] == 1
    assert report["orphan_labels"] == 1
    examples = report["examples"]
    assert any(garbage.name in e for e in examples["unreadable_images"])
    assert any("IEND" in e or "truncat" in e for e in examples["unreadable_images"])
    assert any(unlabelled.name in e for e in examples["orphan_images"])
    assert any(imageless.stem in e for e in examples["orphan_labels"])
    kept = {Path(r.path).name for r in result.rows}
    assert not kept & {p.name for p in (garbage, truncated, unlabelled, label_broken, imageless)}
    assert len(result.rows) == len(read_truth(synth_copy)) - 5


def test_scan_cli_prints_the_summary(synth_root: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pillsnap.data", "scan", "--root", str(synth_root),
         "--out", str(tmp_path / "m"), "data.scan_workers=1"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    assert "orphan images 0" in done.stdout
    report = json.loads((tmp_path / "m" / "scan_report.json").read_text(encoding="utf-8"))
    for key in ("images", "pills", "classes", "orphan_images", "orphan_labels",
                "broken_json", "unreadable_images"):
        assert key in report
    assert report["splits"]["train"] > 0 and report["splits"]["val"] > 0
    assert report["kinds"]["single"] > 0 and report["kinds"]["combo"] > 0


def test_scan_refuses_a_tree_without_aihub_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no AIHub folders"):
        scan(tmp_path, None)
    done = subprocess.run([sys.executable, "-m", "pillsnap.data", "scan", "--root",
                           r"C:\data\aihub", "--out", str(tmp_path)],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 2 and "/mnt/c/data/aihub" in done.stderr
