"""Set the open-set threshold where serving meets it: on crops of the detector's boxes.

    recipe = calibrate_served(pipe, manifest_dir, root, photos=500) or pipe.recipe

Training fits the thresholds on validation crops of the *labelled* boxes; serving crops the
*detector's* boxes, and a feature score moves with the crop (measured on the demo: 27-51%
of known pills under the training threshold when served; docs/benchmarks.md). So, before
export writes the recipe, up to ``photos`` validation photos go through the exported
pipeline itself: single-pill photos through ``single``, combination photos through
``combo`` with each box matched to its labelled pill (IoU 0.5). Every pill of a trained drug
that got an answer counts; every score's threshold is set again so that ``tar`` of them
pass (``OpenSet.refit``), the posterior's temperature on their labels, and the gallery's
``spread`` (how far a served pill lies from its class mean: what an enrolled drug's spread is
compared with). Pills of drugs outside the class index are never used: they are what the
threshold must reject.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pillsnap.contract import decide
from pillsnap.contract.gallery import Gallery, class_spread
from pillsnap.contract.recipe import Recipe
from pillsnap.data.classes import ClassIndex
from pillsnap.data.manifest import read_manifest
from pillsnap.errors import PillsnapError
from pillsnap.export.map50 import match_pills
from pillsnap.infer.pipeline import OnnxPipeline
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
FITTED_ON = "served validation photos (detector boxes)"


@dataclass(frozen=True)
class Calibration:
    """What export writes after setting the threshold on served crops."""

    recipe: Recipe
    gallery: Gallery | None  # with its spread measured on served crops


@dataclass(frozen=True)
class ValPhoto:
    path: Path
    kind: str  # single | combo
    k_codes: tuple[str, ...]  # the labelled pills' K-codes
    boxes: np.ndarray  # (pills, 4) xyxy photo pixels


def known_val_photos(manifest_dir: Path, root: Path, k_codes: tuple[str, ...],
                     limit: int, *, combos: bool = True) -> list[ValPhoto]:
    """Up to ``limit`` validation photos with a pill of a drug in ``k_codes`` (singles of
    known drugs and, with ``combos``, combinations), spread over the split (every n-th), in
    manifest order."""
    known = ClassIndex(k_codes)
    rows = [r for r in read_manifest(manifest_dir / MANIFEST)
            if r.split == "val" and any(p.k_code in known for p in r.pills)
            and ((r.kind == "combo" and combos) or (r.kind != "combo"
                 and r.pills[0].k_code in known))]
    step = max(1, len(rows) // max(limit, 1))
    return [ValPhoto(root / r.path, r.kind, tuple(p.k_code for p in r.pills),
                     np.array([[p.bbox[0], p.bbox[1], p.bbox[0] + p.bbox[2],
                                p.bbox[1] + p.bbox[3]] for p in r.pills], dtype=np.float32))
            for r in rows[::step][:limit]]


def served_pills(pipe: OnnxPipeline, photos: list[ValPhoto]) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """Logits, features and class labels of every answered pill of a trained drug."""
    index = {code: i for i, code in enumerate(pipe.recipe.k_codes)}
    logits, features, labels = [], [], []
    for photo in photos:
        pipeline = "combo" if photo.kind == "combo" else "single"
        try:
            answer = pipe.predict(photo.path.read_bytes(), pipeline=pipeline, top_k=1,
                                  with_outputs=True)
        except (OSError, PillsnapError) as exc:  # unreadable or refused: not a verdict
            logger.warning("open-set calibration: %s skipped: %s", photo.path, exc)
            continue
        rows = answer["logits"]
        if not len(rows) or answer["features"] is None:
            continue
        if pipeline == "single":
            pairs = [(0, 0)]
        else:
            boxes = np.array([p["bbox"] for p in answer["pills"]], dtype=np.float32)
            scores = np.array([p["det_confidence"] for p in answer["pills"]], dtype=np.float32)
            match = match_pills(boxes, scores, photo.boxes)
            pairs = [(i, int(t)) for i, t in enumerate(match) if t >= 0]
        for row, truth in pairs:
            code = photo.k_codes[truth]
            if code in index:
                logits.append(rows[row])
                features.append(answer["features"][row])
                labels.append(index[code])
    if not labels:
        return np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
    return np.stack(logits), np.stack(features), np.array(labels, dtype=np.int64)


def calibrate_served(pipe: OnnxPipeline, manifest_dir: Path, root: Path, *, photos: int,
                     min_pills: int = 20) -> Calibration | None:
    """The pipeline's recipe with its open-set rule refitted on served crops, and its gallery
    with the served spread, or None (one fallback line) when there is nothing to calibrate:
    no rule, no manifest, few pills."""
    rule = pipe.recipe.open_set
    if rule is None or photos == 0:
        return None
    if not (manifest_dir / MANIFEST).is_file():
        log_decision(logger, "open_set.threshold", "training's", f"no manifest at "
                     f"{manifest_dir}: the served crops cannot be scored", fallback=True)
        return None
    chosen = known_val_photos(manifest_dir, root, pipe.recipe.k_codes, photos,
                              combos="combo" in pipe.pipelines)
    logits, features, labels = served_pills(pipe, chosen)
    if len(labels) < min_pills:  # a threshold from a handful of pills says little
        log_decision(logger, "open_set.threshold", "training's", f"{len(labels)} served "
                     f"validation pills of known drugs from {len(chosen)} photos (fewer than "
                     f"{min_pills})", fallback=True)
        return None
    gallery = pipe.gallery
    scores = decide.scores(logits, features, recipe=pipe.recipe, gallery=gallery)
    refitted = rule.refit(scores, fitted_on=FITTED_ON)
    if gallery is not None:
        refitted = dataclasses.replace(refitted, distance_temperature=decide.
                                       fit_distance_temperature(gallery.distances(features),
                                                                labels))
        gallery = dataclasses.replace(gallery, spread=class_spread(
            gallery.whitened(features), labels, gallery.means))
    log_decision(logger, "open_set.threshold", round(refitted.threshold, 4),
                 f"{rule.score} accepting {rule.tar:.0%} of {len(labels)} served validation "
                 f"pills of known drugs from {len(chosen)} photos (training's, on labelled "
                 f"boxes: {rule.threshold:.4g})")
    return Calibration(pipe.recipe.replace(open_set=refitted), gallery)
