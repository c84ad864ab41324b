"""A new drug's photos -> the whitened features its gallery row is the mean of.

    photos = read_photos([Path("a.jpg"), Path("b.jpg")], max_bytes=10 << 20)
    taken = features_of(pipe, photos)          # one crop per photo, as serving makes it
    notes = check_features(taken.whitened, gallery, recipe)   # warnings, never refusals

Each photo goes through the served single pipeline's own steps (``OnnxPipeline.crops`` then
``classify``): the detector's best box grown by the recipe's margin, the pack's shrink, the
eval crop, the classifier's features. A photo that cannot be used stops the enrollment with
its name and the reason, before anything is written: unreadable, not an image, damaged, too
large, no pill found, or several pills (a single-pill photo of the drug is what is asked).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pillsnap.contract import ops
from pillsnap.contract.gallery import Gallery
from pillsnap.contract.recipe import Recipe
from pillsnap.errors import EnrollError, PillsnapError
from pillsnap.infer.pipeline import OnnxPipeline


@dataclass(frozen=True)
class Photo:
    path: Path
    data: bytes
    digest: str  # sha256, first 16 hex digits


@dataclass(frozen=True)
class Taken:
    whitened: np.ndarray  # (photos, d): the features in the gallery's whitened space
    boxes: list[list[float] | None]  # the detector's box per photo (None: whole photo)
    used: list[Photo]  # the photos the features are of
    skipped: list[str]  # photos left out, with why (skip_unusable)


def read_photos(paths: list[Path], *, max_bytes: int) -> list[Photo]:
    """The files' bytes; an unreadable, empty, too large or repeated file is an error."""
    photos: list[Photo] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EnrollError(f"cannot read {path}: {exc.strerror or exc}") from None
        if len(data) > max_bytes:
            raise EnrollError(f"{path} is {len(data)} bytes; photos over "
                              f"serve.max_upload_bytes={max_bytes} are refused, as by the API")
        digest = hashlib.sha256(data).hexdigest()[:16]
        if digest in seen:
            raise EnrollError(f"{path} is the same photo as {seen[digest]}: each photo must "
                              "show the drug anew (another side, angle or light)")
        seen[digest] = path
        photos.append(Photo(path, data, digest))
    return photos


def features_of(pipe: OnnxPipeline, photos: list[Photo], *,
                skip_unusable: bool = False) -> Taken:
    """Each photo's crop as the single pipeline makes it, and its whitened features.
    ``skip_unusable``: a photo with no pill or several is left out (and said why) instead
    of stopping the enrollment; a damaged one still stops it."""
    gallery = pipe.gallery
    if gallery is None or ops.FEATURES_OUTPUT not in pipe.outputs:
        raise EnrollError(f"{pipe.bundle.folder} has no gallery of class statistics (a model "
                          "exported from a last.pt, or trained with open_set.fit_samples=0): "
                          "drugs can only be enrolled into an export of a finished run's "
                          "best.pt")
    crops, boxes, used, skipped = [], [], [], []
    for photo in photos:
        try:
            selection, crop, _, _ = pipe.crops(photo.data, "single")
        except PillsnapError as exc:
            raise EnrollError(f"{photo.path}: {exc}") from None
        problem = None
        if selection.reason == ops.WHOLE_PHOTO:
            problem = (f"no pill found in {photo.path} (the detector found no box): take the "
                       "photo closer, on a plain background, the pill whole in view")
        elif selection.recommend_combo:
            problem = (f"{photo.path} shows several pills (the detector found 2 or more): "
                       "enroll from photos of one pill of the drug")
        if problem is not None:
            if not skip_unusable:
                raise EnrollError(problem)
            skipped.append(problem)
            continue
        crops.append(crop)
        used.append(photo)
        boxes.append(None if selection.boxes is None
                     else [round(float(v), 1) for v in selection.boxes[0]])
    if not crops:
        return Taken(np.zeros((0, gallery.dim)), [], [], skipped)
    _, features = pipe.classify(np.concatenate(crops))
    assert features is not None  # FEATURES_OUTPUT is among the outputs
    return Taken(gallery.whitened(features), boxes, used, skipped)


def check_features(whitened: np.ndarray, gallery: Gallery, recipe: Recipe,
                   names: list[str]) -> list[str]:
    """What a pharmacist should know about these photos (never a refusal: a near twin of a
    known drug is exactly what enrollment is for): a photo unlike the others, and a known
    drug the photos already look like."""
    notes: list[str] = []
    rule = recipe.open_set
    if rule is None:
        return notes
    n = len(whitened)
    if n >= 3:  # each photo against the mean of the others, as a served pill would be
        for i, name in enumerate(names):
            others = np.delete(whitened, i, axis=0).mean(0)
            gap = float(((whitened[i] - others) ** 2).sum()) / (1 + 1 / (n - 1))
            if -gap < rule.threshold:
                notes.append(f"{name} does not look like the other photos (score {-gap:.4g} "
                             f"under the open-set threshold {rule.threshold:.4g}): is it "
                             "the same drug, whole and in focus?")
    d2 = gallery.whitened_distances(whitened)
    nearest = d2.argmin(axis=1)
    accepted = -d2[np.arange(n), nearest] >= rule.threshold
    if accepted.any():
        codes = sorted({gallery.k_codes[int(c)] for c in nearest[accepted]})
        notes.append(f"{int(accepted.sum())} of {n} photos were answered as a drug the model "
                     f"already knows ({', '.join(codes)}) before this enrollment: a near twin, "
                     "or photos of that drug; answers between them will list both")
    return notes
