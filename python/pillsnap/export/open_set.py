"""Set the open-set threshold where serving meets it: on crops of the detector's boxes.

    record = calibrate_served(Path("artifacts/export"), manifest_dir, root, photos=500)

Training fits the thresholds on validation crops of the *labelled* boxes; serving crops the
*detector's* boxes, and a feature score moves with the crop (measured on the demo: 27-51%
of known pills under the training threshold when served; docs/benchmarks.md). So, after
export, up to ``photos`` validation single-pill photos of trained drugs go through the
exported pipeline itself, and every score's threshold is set again so that ``tar`` of
them pass. The new thresholds are written into the classifier's metadata (what both servers
read); the training ones are kept beside them as ``thresholds_training``. Photos of drugs
outside the class index are never used: they are what the threshold must reject.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pillsnap.contract import ops
from pillsnap.data.classes import ClassIndex
from pillsnap.data.manifest import read_manifest
from pillsnap.errors import PillsnapError
from pillsnap.export.metadata import write_metadata
from pillsnap.infer.pipeline import OnnxPipeline
from pillsnap.logs import log_decision
from pillsnap.train.calibrate import accepting_threshold

logger = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


def known_val_photos(manifest_dir: Path, root: Path, k_codes: tuple[str, ...],
                     limit: int) -> list[Path]:
    """Up to ``limit`` validation single-pill photos of drugs in ``k_codes``, spread over the
    split (every n-th), in manifest order."""
    known = ClassIndex(k_codes)
    rows = [root / r.path for r in read_manifest(manifest_dir / MANIFEST)
            if r.split == "val" and r.kind == "single" and r.pills[0].k_code in known]
    step = max(1, len(rows) // max(limit, 1))
    return rows[::step][:limit]


def calibrate_served(export: Path, manifest_dir: Path, root: Path, *, photos: int,
                     min_photos: int = 20) -> dict[str, Any] | None:
    """Reset the classifier's open-set thresholds on served crops; the new ``open_set``
    metadata, or None when there is nothing to calibrate (no open set, no photos)."""
    pipe = OnnxPipeline.open(export)
    info = pipe.bundle.classifier_info.values.get("open_set")
    if not info or photos == 0:
        return None
    if not (manifest_dir / MANIFEST).is_file():
        log_decision(logger, "open_set.threshold", "training's", f"no manifest at "
                     f"{manifest_dir}: the served crops cannot be scored", fallback=True)
        return None
    paths = known_val_photos(manifest_dir, root, pipe.bundle.k_codes, photos)
    scores = _served_scores(pipe, paths)
    served = len(next(iter(scores.values()), []))
    if served < min_photos:  # a threshold from a handful of photos says little
        log_decision(logger, "open_set.threshold", "training's", f"{served} served "
                     f"validation photos of known drugs (fewer than {min_photos})",
                     fallback=True)
        return None
    tar = float(info["tar"])
    thresholds = {kind: accepting_threshold(np.array(values), tar)
                  for kind, values in scores.items()}
    updated = {**info, "threshold": thresholds[info["score"]], "thresholds": thresholds,
               "thresholds_training": info["thresholds"], "calibration_photos": served}
    write_metadata(export / "classifier" / "model.onnx", {"open_set": updated})
    log_decision(logger, "open_set.threshold", round(updated["threshold"], 4),
                 f"{info['score']} accepting {tar:.0%} of {served} served validation "
                 f"photos of known drugs (training's, on labelled boxes: "
                 f"{info['threshold']:.4g})")
    return updated


def _served_scores(pipe: OnnxPipeline, paths: list[Path]) -> dict[str, list[float]]:
    """Every open-set score of the single pipeline's answer for each readable photo."""
    scores: dict[str, list[float]] = {}
    for path in paths:
        try:
            answer = pipe.predict(path.read_bytes(), pipeline="single", top_k=1,
                                  with_logits=True)
        except (OSError, PillsnapError) as exc:  # unreadable or refused: not a verdict
            logger.warning("open-set calibration: %s skipped: %s", path, exc)
            continue
        logits, graph = answer["logits"], answer["known_score"]
        if not len(logits):
            continue
        first = ops.known_scores(logits[:1], pipe.temperature,
                                 None if graph is None else graph[:1])
        for kind, values in first.items():
            scores.setdefault(kind, []).append(float(values[0]))
    return scores
