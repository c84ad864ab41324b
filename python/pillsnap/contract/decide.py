"""From the classifier's outputs to the answer for each pill: which drug, how sure, and whether
it is a drug the model knows at all.

    from pillsnap.contract import decide              # Triton: import pillsnap_decide
    pills = decide.identify(logits, features, recipe=recipe, gallery=gallery, drugs=drugs, k=5)
    decide.scores(logits, features, recipe=recipe, gallery=gallery)   # every open-set score

The classifier's softmax sums to one over the classes it learnt, so a drug outside them gets
a confident top-1 all the same. What says "none of these" is the pooled features' distance to
the class means (``pillsnap.contract.gallery``): ``known_score = -min_c distance`` (the
``mahalanobis`` score, served by default), under ``recipe.open_set.threshold`` the pill is
``unknown`` and its candidates are the nearest known drugs, never an identification.

Drugs enrolled without retraining (``python -m pillsnap.enroll``) are gallery rows past the
classifier's own classes. The Gaussian posterior over all class means,
``softmax(-distance / (2 T))`` (T: ``open_set.distance_temperature``), says how much of the
answer belongs to the enrolled drugs (``q``); the enrolled drugs get their posterior, the
classifier's classes share the rest by the calibrated softmax: ``(1 - q) * p``. Without an
enrolled drug ``q`` is 0 and the answer is exactly the classifier's.

Near twins: where the runner-up candidates share the top-1's shape and colours in the drug
table and still take a real share of the confidence, the pill says so (``near_twins``) with
what tells them apart (imprints, score lines, size), so a pharmacist knows what to check.

numpy only: export copies this file into Triton's python models (``pillsnap_decide.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

if __package__:  # pillsnap.contract.decide
    from . import ops
    from .gallery import Gallery
    from .recipe import OPEN_SET_SCORES, Recipe
else:  # Triton's copy, next to pillsnap_ops.py, pillsnap_gallery.py and pillsnap_recipe.py
    import pillsnap_ops as ops  # type: ignore[import-not-found,no-redef]
    from pillsnap_gallery import Gallery  # type: ignore[import-not-found,no-redef]
    from pillsnap_recipe import OPEN_SET_SCORES, Recipe  # type: ignore[import-not-found,no-redef]

LOGIT_SCORES = OPEN_SET_SCORES[:3]
TWIN_SHARE = 0.05  # a runner-up under this confidence is not worth a pharmacist's look
TWIN_FIELDS = (("print_front", "imprint (front)"), ("print_back", "imprint (back)"),
               ("line_front", "score line (front)"), ("line_back", "score line (back)"),
               ("length_long_mm", "length (mm)"), ("length_short_mm", "width (mm)"))
Drugs = Mapping[str, Mapping[str, Any]]


def logit_score(logits: np.ndarray, kind: str, temperature: float = 1.0) -> np.ndarray:
    """A score computed from the logits alone: ``msp`` (the calibrated top-1 probability),
    ``max_logit``, or ``energy`` (``logsumexp``: the evidence for every class)."""
    z = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    if kind == "msp":
        return ops.softmax(z, temperature).max(axis=-1).astype(np.float64)
    if kind == "max_logit":
        return z.max(axis=-1)
    if kind == "energy":
        top = z.max(axis=-1)
        return top + np.log(np.exp(z - top[:, None]).sum(axis=-1))
    raise ValueError(f"{kind!r} is not a logit score; choose one of {LOGIT_SCORES}")


def scores(logits: np.ndarray, features: np.ndarray | None, *, recipe: Recipe,
           gallery: Gallery | None) -> dict[str, np.ndarray]:
    """Every open-set score the inputs allow, per row (higher: more like a known drug):
    the logit scores, and ``mahalanobis`` when there are features and a gallery."""
    out = {kind: logit_score(logits, kind, recipe.temperature) for kind in LOGIT_SCORES}
    if gallery is not None and features is not None and len(np.atleast_2d(logits)):
        out["mahalanobis"] = -gallery.distances(features).min(axis=1)
    return out


def posterior(logits: np.ndarray, distances: np.ndarray | None, *, recipe: Recipe,
              gallery: Gallery | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per row, the probability of every drug the server knows, and their K-codes: the
    classifier's calibrated softmax, shared with the enrolled drugs when there are any."""
    probs = ops.softmax(np.atleast_2d(logits), recipe.temperature).astype(np.float64)
    if gallery is None or distances is None or not gallery.enrolled:
        return probs, recipe.k_codes
    t = recipe.open_set.distance_temperature if recipe.open_set is not None else 1.0
    z = -distances / (2.0 * t)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    post = e / e.sum(axis=1, keepdims=True)
    enrolled = post[:, gallery.trained:]
    share = enrolled.sum(axis=1, keepdims=True)
    return np.hstack([(1.0 - share) * probs, enrolled]), gallery.k_codes


def identify(logits: np.ndarray, features: np.ndarray | None, *, recipe: Recipe,
             gallery: Gallery | None, drugs: Drugs, k: int) -> list[ops.Pill]:
    """Per classified region: ``top1``, ``candidates``, ``near_twins`` and the open-set
    verdict (``unknown``, ``open_set_score``; ``False``/``None`` without an open-set rule)."""
    logits = np.atleast_2d(np.asarray(logits, dtype=np.float32))
    if not len(logits) or not logits.shape[1]:
        return []
    distances = (gallery.distances(features) if gallery is not None and features is not None
                 else None)
    probs, codes = posterior(logits, distances, recipe=recipe, gallery=gallery)
    table: Drugs = {**drugs, **gallery.drugs()} if gallery is not None else drugs
    rule = recipe.open_set
    known: np.ndarray | list[None] = [None] * len(logits)
    if rule is not None:
        if rule.score == "mahalanobis":
            if distances is None:
                raise ValueError("the open-set score is mahalanobis, which needs the "
                                 "classifier's features and the gallery of class means")
            known = -distances.min(axis=1)
        else:
            known = logit_score(logits, rule.score, recipe.temperature)
    k = max(1, min(k, probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    pills: list[ops.Pill] = []
    for row, score in zip(range(len(logits)), known, strict=True):
        cands = [ops.Candidate(**ops.drug_info(codes[int(i)], table),
                               confidence=round(float(probs[row, i]), 6)) for i in order[row]]
        pills.append(ops.Pill(
            top1=cands[0], candidates=cands, near_twins=near_twins(cands, table),
            unknown=rule is not None and bool(score < rule.threshold),
            open_set_score=None if score is None else round(float(score), 4)))
    return pills


def near_twins(candidates: Sequence[ops.Candidate], drugs: Drugs) -> list[ops.NearTwin]:
    """The runner-ups that look like the top-1 in the drug table (same shape and colours)
    and hold at least ``TWIN_SHARE`` of the confidence, each with what tells it apart."""
    first = drugs.get(candidates[0]["k_code"], {}) if candidates else {}
    if not first.get("shape"):
        return []
    twins: list[ops.NearTwin] = []
    for cand in candidates[1:]:
        other = drugs.get(cand["k_code"], {})
        if cand["confidence"] < TWIN_SHARE or not _same_look(first, other):
            continue
        differs = [f"{label}: {_text(first.get(key))} vs {_text(other.get(key))}"
                   for key, label in TWIN_FIELDS if _differ(first.get(key), other.get(key))]
        twins.append(ops.NearTwin(k_code=cand["k_code"], name=cand["name"],
                                  confidence=cand["confidence"], differs_by=differs))
    return twins


def _same_look(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return bool(b) and all(a.get(key) == b.get(key) for key in ("shape", "color1", "color2"))


def _differ(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return not math.isclose(float(a), float(b), abs_tol=0.05)
    return (a or "") != (b or "")


def _text(value: Any) -> str:
    return "none" if value in (None, "") else f"'{value}'" if isinstance(value, str) else str(value)


def fit_distance_temperature(distances: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of ``softmax(-distance / (2 T))`` for the
    true class (temperature scaling of the Gaussian posterior; a search over log T)."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    finite = np.isfinite(d)
    if not len(y):
        return 1.0
    d = np.where(finite, d, d[finite].max() * 10 if finite.any() else 1e6)

    def nll(log_t: float) -> float:
        z = -d / (2.0 * math.exp(log_t))
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(y)), y].mean())

    lo, hi = -6.0, 12.0  # T from 0.0025 to 160,000: distances run in the thousands
    golden = (math.sqrt(5) - 1) / 2
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = nll(b)
    return float(math.exp((lo + hi) / 2))
