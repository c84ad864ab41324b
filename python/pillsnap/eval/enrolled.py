"""How well drugs enrolled without retraining are identified, and what it costs the others.

    python -m pillsnap.eval --cfg demo_run/config.yaml --export demo_run/export --enroll 1,5,10

For each photo count ``n``: a copy of the export gets every drug outside its class index
that has training photos (drugs held out with ``data.exclude_k_codes``, or the synthetic
generator's held-out drugs with ``--holdout-train-per-class``) enrolled from ``n`` of them
(a seeded draw), through ``pillsnap.enroll.actions.add_drug``: the command's own path and
checks (a photo in which the detector finds no pill, or several, is left out, as
``--skip-unusable`` does; a drug left with none is listed as not enrolled). Then the
split's single-pill photos go through the copy's pipeline: the enrolled
drugs' photos (never used to enroll: they are validation photos) must come back named
(``top1``: the top-1, not flagged unknown; ``nearest``: the top-1, flagged or not, which
tells the features' part from the threshold's), and the known drugs' top-1 must not fall
(the change is reported against the same photos before enrolling). Embedded backend only
(it needs the export folder); Triton serves the same gallery file (``tests/enroll``).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pillsnap.config.schema import PillsnapConfig
from pillsnap.data.drugs import load_drugs
from pillsnap.data.manifest import read_manifest
from pillsnap.enroll.actions import add_drug
from pillsnap.errors import EnrollError, PillsnapError
from pillsnap.eval.samples import Sample
from pillsnap.infer.pipeline import OnnxPipeline

logger = logging.getLogger(__name__)

SEED = 0


def enrolled_report(cfg: PillsnapConfig, export: Path, samples: Sequence[Sample], *,
                    shots: Sequence[int]) -> dict[str, Any]:
    """Per photo count: enrolled drugs' top-1 on unseen photos, known drugs' top-1 change."""
    manifest, root = Path(cfg.data.manifest_dir), Path(cfg.data.root)
    singles = [s for s in samples if s.kind == "single"]
    known = [s for s in singles if s.pills[0].known]
    unknown = {s.pills[0].k_code for s in singles if not s.pills[0].known}
    sources = _training_photos(manifest, root, unknown)
    drugs = load_drugs(manifest) if (manifest / "drugs.json").is_file() else {}
    out: dict[str, Any] = {"drugs_without_photos": sorted(unknown - set(sources)),
                           "shots": [], "skipped": []}
    if not sources:
        return out
    before = _known_top1(OnnxPipeline.open(export, threads=cfg.serve.threads), known)
    for n in shots:
        with tempfile.TemporaryDirectory(prefix="pillsnap-enroll-") as tmp:
            copy = Path(tmp) / "export"
            shutil.copytree(export, copy, ignore=shutil.ignore_patterns("enrolled",
                                                                        "gallery_history"))
            pipe = OnnxPipeline.open(copy, threads=cfg.serve.threads)
            enrolled = _enroll_all(cfg, copy, pipe, sources=sources, drugs=drugs, n=n,
                                   skipped=out["skipped"])
            rows = [s for s in singles if s.pills[0].k_code in enrolled]
            answers = [_answer(pipe, s) for s in rows]
            nearest = sum(code == s.pills[0].k_code for (code, _), s in zip(answers, rows,
                                                                          strict=True))
            named = sum(code == s.pills[0].k_code and not flagged
                        for (code, flagged), s in zip(answers, rows, strict=True))
            after = _known_top1(pipe, known)
        out["shots"].append({"photos": n, "drugs": len(enrolled), "pills": len(rows),
                             "top1": named / len(rows) if rows else 0.0,
                             "nearest": nearest / len(rows) if rows else 0.0,
                             "known_top1": after, "known_top1_before": before,
                             "known_change": after - before})
        logger.info("eval --enroll: %d photo(s) each, %d drugs, enrolled top-1 %.3f (nearest "
                    "%.3f), known top-1 %.3f -> %.3f", n, len(enrolled),
                    out["shots"][-1]["top1"], out["shots"][-1]["nearest"], before, after)
    return out


def _training_photos(manifest: Path, root: Path, codes: set[str]) -> dict[str, list[Path]]:
    """Training-split single-pill photos of ``codes``, in manifest order."""
    found: dict[str, list[Path]] = {}
    for row in read_manifest(manifest):
        if row.split == "train" and row.kind == "single" and row.pills[0].k_code in codes:
            found.setdefault(row.pills[0].k_code, []).append(root / row.path)
    return found


def _enroll_all(cfg: PillsnapConfig, export: Path, pipe: OnnxPipeline, *,
                sources: dict[str, list[Path]], drugs: dict[str, dict[str, Any]], n: int,
                skipped: list[str]) -> set[str]:
    rng = np.random.default_rng(SEED)
    enrolled = set()
    for code, photos in sorted(sources.items()):
        if len(photos) < n:
            skipped.append(f"{code}: {len(photos)} training photos, fewer than {n}")
            continue
        chosen = [photos[i] for i in sorted(rng.choice(len(photos), n, replace=False))]
        entry = {k: v for k, v in drugs.get(code, {}).items() if k != "k_code"} or {
            "name_en": code}
        try:
            add_drug(cfg, export, k_code=code, photos=chosen, drug=entry, pipe=pipe,
                     min_photos=1, skip_unusable=True)
        except EnrollError as exc:  # no pill found in a photo, and the like: counted
            skipped.append(f"{code} ({n} photos): {exc}")
            continue
        enrolled.add(code)
    return enrolled


def _answer(pipe: OnnxPipeline, sample: Sample) -> tuple[str | None, bool]:
    """The answer's top-1 and whether it is flagged unknown (None: no pill)."""
    try:
        pills = pipe.predict(sample.path.read_bytes(), pipeline="single", top_k=1)["pills"]
    except (OSError, PillsnapError):
        return None, False
    if not pills:
        return None, False
    return str(pills[0]["top1"]["k_code"]), bool(pills[0]["unknown"])


def _known_top1(pipe: OnnxPipeline, known: Sequence[Sample]) -> float:
    """Top-1 of the known drugs' photos, whatever the open-set flag (the classifier's
    identification; the flag is measured apart)."""
    right = 0
    for s in known:
        try:
            pills = pipe.predict(s.path.read_bytes(), pipeline="single", top_k=1)["pills"]
        except (OSError, PillsnapError):
            continue
        right += bool(pills) and pills[0]["top1"]["k_code"] == s.pills[0].k_code
    return right / len(known) if known else 0.0
