"""The detector's dataset: a YOLO-format view of the manifest (images, labels, data.yaml).

    python -m pillsnap.data yolo --manifest artifacts/manifest --root DATA --out artifacts/yolo

The detector (ultralytics) keeps its own loader, so it gets plain files: each photo resized
once so its long side is the detector's input size (decoding a 976x1280 PNG costs ~30 ms,
the resized JPEG a few), one label line per pill (class 0, "pill", normalised centre and
size), and ``data.yaml``. Combination photos always; single-pill photos on request. A
rerun skips what is already written, so an interrupted run resumes.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, UnidentifiedImageError

from pillsnap.data.manifest import ManifestRow, read_manifest, write_json

logger = logging.getLogger(__name__)

DATA_YAML = "data.yaml"


@dataclass(frozen=True)
class _Job:
    source: str
    image: str
    label: str
    lines: str
    long_side: int
    quality: int


def yolo_lines(row: ManifestRow) -> str:
    """One ``0 cx cy w h`` line per pill, normalised to the photo (so resizing keeps them)."""
    out = []
    for pill in row.pills:
        x, y, w, h = pill.bbox
        cx, cy = (x + w / 2) / row.width, (y + h / 2) / row.height
        out.append(f"0 {cx:.6f} {cy:.6f} {w / row.width:.6f} {h / row.height:.6f}")
    return "\n".join(out) + "\n"


def _write_one(job: _Job) -> str | None:
    """Write one resized image and its label file; return an error message or None."""
    if Path(job.image).is_file() and Path(job.label).is_file():
        return None  # done by an earlier run
    try:
        with Image.open(job.source) as source:
            rgb = source.convert("RGB")
        scale = job.long_side / max(rgb.size)
        if scale < 1:
            size = (round(rgb.width * scale), round(rgb.height * scale))
            rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
        rgb.save(job.image + ".tmp", "JPEG", quality=job.quality)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        Path(job.image + ".tmp").unlink(missing_ok=True)
        return f"{job.source}: {exc}"
    os.replace(job.image + ".tmp", job.image)
    Path(job.label).write_text(job.lines, encoding="utf-8")  # label last: it marks "done"
    return None


def write_yolo_view(manifest_dir: Path, root: Path, out: Path, *, image_size: int = 640,
                    include_single: bool = False, workers: int = 0,
                    quality: int = 95) -> dict[str, Any]:
    """Write the view; return a report (images per split, skipped files with reasons)."""
    jobs: dict[str, list[_Job]] = {"train": [], "val": []}
    for number, row in enumerate(read_manifest(manifest_dir)):
        if row.kind != "combo" and not include_single:
            continue
        name = f"{number:07d}_{Path(row.path).stem}"
        images, labels = out / "images" / row.split, out / "labels" / row.split
        jobs[row.split].append(_Job(str(root / row.path), str(images / f"{name}.jpg"),
                                    str(labels / f"{name}.txt"), yolo_lines(row),
                                    image_size, quality))
    for split in jobs:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    every = [job for split_jobs in jobs.values() for job in split_jobs]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(every) < 64:
        errors = [_write_one(job) for job in every]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            errors = list(pool.map(_write_one, every, chunksize=16))
    failed = [e for e in errors if e]
    for message in failed[:20]:
        logger.warning("yolo view: skipped %s", message)
    data = {"path": str(out.resolve()), "train": "images/train", "val": "images/val",
            "nc": 1, "names": {0: "pill"}}
    (out / DATA_YAML).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    report = {"images": {s: len(j) for s, j in jobs.items()}, "skipped": len(failed),
              "skipped_examples": failed[:20], "include_single": include_single,
              "image_size": image_size}
    write_json(report, out / "yolo_report.json")
    return report
