"""Pack a manifest split into one memory-mapped training file (see docs/pack-format.md).

    python -m pillsnap.data pack --manifest artifacts/manifest --root data/aihub \\
        --out artifacts/pack --split train

Each photo (``pack.region=image``) or each labelled pill with a margin around it
(``pack.region=pill``, the default: in AIHub photos the pill fills a small part) is decoded,
cropped, shrunk so its short side is ``pack.short_side`` (never enlarged) and stored as
JPEG (``pack.jpeg_quality``) or raw RGB, in parallel in Rust. An interrupted run resumes
where it stopped; unreadable images are skipped, counted and listed in the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pillsnap.contract.ops import pill_crop  # one definition for training and serving crops
from pillsnap.data.classes import ClassIndex
from pillsnap.data.manifest import MANIFEST_FILE, ManifestRow, read_manifest, write_json
from pillsnap.errors import DataError

logger = logging.getLogger(__name__)

CHUNK = 256  # items per native call: enough to keep every thread busy, small for progress
PILL_BITS = 8  # source_id = row number << 8 | pill number (a photo holds at most 255 pills)


@dataclass(frozen=True)
class Item:
    """One record to make: a source photo, an optional crop, its label and boxes."""

    source_id: int
    path: str
    crop: tuple[float, float, float, float] | None
    label: int
    boxes: list[tuple[float, float, float, float, int]]


def plan_items(rows: list[ManifestRow], root: Path, classes: ClassIndex, *, region: str,
               margin: float) -> tuple[list[Item], int]:
    """Items in manifest order; pills of K-codes outside the class index are left out."""
    items: list[Item] = []
    unknown = 0
    for number, row in enumerate(rows):
        path = str(root / row.path)
        labelled = [(p, classes.index(p.k_code)) for p in row.pills if p.k_code in classes]
        unknown += len(row.pills) - len(labelled)
        if region == "image":
            if not labelled:
                continue
            boxes = [(p.bbox[0], p.bbox[1], p.bbox[2], p.bbox[3], label) for p, label in labelled]
            single = labelled[0][1] if len(labelled) == 1 else -1
            items.append(Item(number << PILL_BITS, path, None, single, boxes))
            continue
        for k, (pill, label) in enumerate(labelled):
            crop = pill_crop(pill.bbox, row.width, row.height, margin)
            x, y, w, h = pill.bbox
            box = (x - crop[0], y - crop[1], w, h, label)
            items.append(Item(number << PILL_BITS | k, path, crop, label, [box]))
    return items, unknown


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _manifest_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def build_pack(manifest_dir: Path, root: Path, out: Path, *, split: str = "train",
               short_side: int = 480, quality: int = 90, storage: str = "jpeg",
               region: str = "pill", margin: float = 0.15, workers: int = 0,
               resume: bool = True, classes: ClassIndex | None = None) -> dict[str, Any]:
    """Write ``out`` (a ``.pack`` file) from one split of a manifest; return the report.

    ``classes``: the classes to train (``pillsnap.data.classes.training_classes``; default:
    the manifest's whole index); pills of other K-codes are left out.
    """
    started = time.perf_counter()
    rows = [r for r in read_manifest(manifest_dir) if r.split == split]
    if not rows:
        raise DataError(f"the manifest in {manifest_dir} has no {split!r} images")
    classes = classes if classes is not None else ClassIndex.load(manifest_dir)
    items, unknown = plan_items(rows, Path(root), classes, region=region, margin=margin)
    metadata = {"split": split, "short_side": short_side, "quality": quality, "region": region,
                "margin": margin, "storage": storage, "classes": len(classes),
                "manifest_sha256": _manifest_hash(Path(manifest_dir) / MANIFEST_FILE)}
    out.parent.mkdir(parents=True, exist_ok=True)
    from pillsnap.native import _native as nat

    skipped: list[str] = []
    with nat.PackWriter(str(out), storage, class_hash=classes.hash,
                        metadata_json=json.dumps(metadata), resume=resume) as writer:
        done = len(writer)
        if done:
            logger.info("decision: resume=%d records (an earlier run was interrupted)", done)
        todo = _remaining(items, writer, done)
        with tqdm(total=len(items), initial=len(items) - len(todo), unit="img",
                  desc=f"pack {split}", disable=None) as bar:
            for chunk in _chunks(todo, CHUNK):
                records = nat.prepare_records(
                    [(i.path, i.crop, i.boxes) for i in chunk], short_side=short_side,
                    quality=quality, storage=storage, threads=workers)
                batch = []
                for item, result in zip(chunk, records, strict=True):
                    if isinstance(result, Exception):
                        skipped.append(f"{item.path}: {result}")
                        continue
                    payload, width, height, boxes = result
                    batch.append((payload, width, height, item.label, boxes, item.source_id))
                if batch:
                    writer.add_many(batch)
                bar.update(len(chunk))
        summary = writer.finish()
    for message in skipped[:20]:
        logger.warning("pack: skipped %s", message)
    size = out.stat().st_size
    report = {"pack": str(out), "split": split, "records": summary["records"],
              "skipped_unreadable": len(skipped), "skipped_examples": skipped[:20],
              "unknown_class_pills": unknown, "bytes": size,
              "mb_per_1000": round(size / max(1, summary["records"]) * 1000 / 2**20, 2),
              "seconds": round(time.perf_counter() - started, 1), "metadata": metadata}
    write_json(report, out.with_suffix(".report.json"))
    return report


def _remaining(items: list[Item], writer: Any, done: int) -> list[Item]:
    """Items after the last one a resumed writer already holds (found by source id)."""
    if not done:
        return items
    last_id = writer.last_source_id()
    for n, item in enumerate(items):
        if item.source_id > last_id:
            return items[n:]
    return []
