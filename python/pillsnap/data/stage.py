"""Progressive subsets of the training data: stage 1 (small) to 4 (everything useful).

    python -m pillsnap.data stage --stage 1 --manifest artifacts/manifest --out artifacts/stage1

Stratified and deterministic by seed: the classes are a seeded sample, each class gives
an equal share of single-pill training images (a short class gives all it has and the rest
is spread over the others). Validation keeps every official VS/VL image of the chosen
classes. Combination images come along when all their pills are chosen classes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pillsnap.data.classes import ClassIndex
from pillsnap.data.drugs import load_drugs, save_drugs, subset_drugs
from pillsnap.data.manifest import ManifestRow, read_manifest, write_json, write_manifest

logger = logging.getLogger(__name__)

STAGE_REPORT = "stage_report.json"


@dataclass(frozen=True)
class StageSpec:
    images: int
    classes: int


STAGES = {
    1: StageSpec(5_000, 50),
    2: StageSpec(25_000, 250),
    3: StageSpec(100_000, 1_000),
    4: StageSpec(500_000, 4_523),
}


def allocate(available: dict[str, int], total: int) -> dict[str, int]:
    """Equal shares of ``total`` over classes, capped by what each class has (water-filling)."""
    take = dict.fromkeys(available, 0)
    open_classes = sorted(available, key=lambda c: (available[c], c))
    remaining = total
    while open_classes and remaining > 0:
        share, extra = divmod(remaining, len(open_classes))
        smallest = open_classes[0]
        room = available[smallest] - take[smallest]
        if room <= share:  # the shortest class cannot fill a share: give it everything
            take[smallest] += room
            remaining -= room
            open_classes.pop(0)
            continue
        for i, code in enumerate(open_classes):
            take[code] += share + (1 if i < extra else 0)
        remaining = 0
    return take


def sample_stage(rows: list[ManifestRow], classes: ClassIndex, spec: StageSpec,
                 seed: int) -> tuple[list[ManifestRow], ClassIndex, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    singles: dict[str, list[ManifestRow]] = defaultdict(list)
    for row in rows:
        if row.split == "train" and row.kind == "single" and row.k_codes[0] in classes:
            singles[row.k_codes[0]].append(row)
    eligible = [c for c in classes.k_codes if singles.get(c)]
    n_classes = min(spec.classes, len(eligible))
    picked = sorted(rng.choice(len(eligible), size=n_classes, replace=False).tolist())
    chosen = classes.subset(eligible[i] for i in picked)

    take = allocate({c: len(singles[c]) for c in chosen.k_codes}, spec.images)
    train: list[ManifestRow] = []
    for code in chosen.k_codes:
        pool = sorted(singles[code], key=lambda r: r.path)
        order = rng.permutation(len(pool))[: take[code]]
        train.extend(pool[i] for i in sorted(order.tolist()))
    chosen_set = set(chosen.k_codes)
    combos = [r for r in rows if r.kind == "combo" and set(r.k_codes) <= chosen_set]
    val = [r for r in rows
           if r.split == "val" and r.kind == "single" and r.k_codes[0] in chosen_set]
    out_rows = train + [r for r in combos if r.split == "train"] + val + \
        [r for r in combos if r.split == "val"]
    counts = sorted(take.values()) or [0]
    report = {
        "requested": {"images": spec.images, "classes": spec.classes},
        "taken": {
            "classes": len(chosen), "train_single": len(train),
            "train_combo": sum(r.split == "train" for r in combos),
            "val_single": len(val), "val_combo": sum(r.split == "val" for r in combos),
        },
        "available": {"classes": len(eligible), "train_single": sum(map(len, singles.values()))},
        "per_class_train": {"min": counts[0], "max": counts[-1]},
        "seed": seed,
        "class_index_hash": chosen.hash,
    }
    return out_rows, chosen, report


def make_stage(manifest_dir: Path, out: Path, *, stage: int | None = None, seed: int = 42,
               images: int | None = None, n_classes: int | None = None,
               classes: ClassIndex | None = None) -> dict[str, Any]:
    """Write a stage subset as a manifest directory of its own; return its report.
    ``classes``: the classes to draw from (``training_classes``: the index less the
    excluded K-codes); default the manifest's whole index."""
    base = STAGES[stage] if stage else StageSpec(0, 0)
    spec = StageSpec(images or base.images, n_classes or base.classes)
    if spec.images <= 0 or spec.classes <= 0:
        raise ValueError("give --stage 1..4, or both --images and --classes")
    rows = list(read_manifest(manifest_dir))
    classes = classes if classes is not None else ClassIndex.load(manifest_dir)
    subset, chosen, report = sample_stage(rows, classes, spec, seed)
    report = {"stage": stage, "source": str(manifest_dir), **report}
    taken = report["taken"]
    if taken["classes"] < spec.classes or taken["train_single"] < spec.images:
        logger.warning("stage %s: the data has fewer than %d images / %d classes; took %d / %d",
                       stage, spec.images, spec.classes, taken["train_single"], taken["classes"])
    write_manifest(subset, out / "manifest.jsonl")
    chosen.save(out)
    save_drugs(subset_drugs(load_drugs(manifest_dir), chosen.k_codes), out)
    write_json(report, out / STAGE_REPORT)
    return report
