"""The detector's YOLO view: every pill of every combination photo, in normalised coordinates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pillsnap.data import read_manifest
from pillsnap.data.scan import scan


@pytest.fixture(scope="module")
def manifest(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifest")
    scan(synth_root, out, workers=1)
    return out


def _labels(out: Path, split: str) -> dict[str, list[list[float]]]:
    return {p.stem: [list(map(float, line.split())) for line in p.read_text().splitlines()]
            for p in (out / "labels" / split).glob("*.txt")}


def test_view_holds_every_combo_pill(manifest: Path, synth_root: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pillsnap.data", "yolo", "--manifest", str(manifest),
         "--root", str(synth_root), "--out", str(tmp_path / "yolo"), "--workers", "1",
         "models.detector.image_size=160"],
        capture_output=True, text=True, check=True, cwd=tmp_path)
    assert '"skipped": 0' in done.stdout
    out = tmp_path / "yolo"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["nc"] == 1 and data["names"] == {0: "pill"}
    assert (out / data["train"]).is_dir() and (out / data["val"]).is_dir()
    rows = [r for r in read_manifest(manifest) if r.kind == "combo"]
    for split in ("train", "val"):
        labels = _labels(out, split)
        want = [r for r in rows if r.split == split]
        assert len(labels) == len(want) > 0
        for row in want:
            stem = next(s for s in labels if s.endswith(Path(row.path).stem))
            got = sorted(labels[stem])
            expected = sorted(
                [0.0, (x + w / 2) / row.width, (y + h / 2) / row.height, w / row.width,
                 h / row.height] for x, y, w, h in (p.bbox for p in row.pills))
            assert len(got) == len(expected)
            for have, want_line in zip(got, expected, strict=True):
                assert have == pytest.approx(want_line, abs=1e-5)
            with Image.open(out / "images" / split / f"{stem}.jpg") as img:
                assert max(img.size) == 160  # resized once to the detector's input size
                assert img.width / img.height == pytest.approx(row.width / row.height, rel=0.02)


def test_rerun_resumes_and_singles_on_request(manifest: Path, synth_root: Path,
                                              tmp_path: Path) -> None:
    from pillsnap.data.yolo_view import write_yolo_view

    first = write_yolo_view(manifest, synth_root, tmp_path, image_size=128, workers=1)
    some = next((tmp_path / "images" / "train").glob("*.jpg"))
    stamp = some.stat().st_mtime_ns
    write_yolo_view(manifest, synth_root, tmp_path, image_size=128, workers=1)
    assert some.stat().st_mtime_ns == stamp  # not rewritten
    both = write_yolo_view(manifest, synth_root, tmp_path / "all", image_size=128,
                           include_single=True, workers=1)
    assert both["images"]["train"] > first["images"]["train"]
