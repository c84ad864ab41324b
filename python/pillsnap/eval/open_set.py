"""How well the served answers tell drugs the model knows from drugs it does not, and where
the unknown ones get through: ``open_set_report(answered, ...)``.

    report["open_set"]["auroc"], report["open_set"]["auroc_ci95"]     # with its interval
    report["open_set"]["per_drug"]    # each unknown drug: AUROC, flagged, named, named as
    report["open_set"]["leaks"]       # unknown drug -> the known drug it was named as, both
                                      # drugs' shape, colours, imprints and ingredient
    report["open_set"]["framing"]     # labelled-box crops against the detector's (embedded)

A pill whose K-code is not in the served class index is *unknown*; its answer is right when
flagged ``unknown``. *Named with no flag*: an unknown pill answered with neither ``unknown``
nor ``low_confidence`` (what a user would take for an identification). Twins are unknown
drugs with a known look-alike (same shape and colours in the drug table, or the synthetic
generator's ``twin_of``): counted apart, as they are what lets unknown drugs through.
Every AUROC has a 95% bootstrap interval that resamples photos (``BOOTSTRAP`` draws, seeded):
pills of one photo are not independent, and the interval says whether 0.92 and 0.95 can be
told apart on this many drugs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pillsnap.eval import metrics

if TYPE_CHECKING:
    from pillsnap.eval.report import Answered

TAR = 0.95  # the known-pill acceptance at which the false-accept rate is read
BOOTSTRAP = 1000
LEAKS = 20  # (unknown drug, named drug) pairs listed, most frequent first
Drugs = Mapping[str, Mapping[str, Any]]


def open_set_report(answered: Sequence[Answered], *, low_confidence: float,
                    drugs: Drugs) -> dict[str, Any]:
    known = [a for a in answered if a.truth.known and a.pill is not None]
    unknown = [a for a in answered if not a.truth.known]
    out: dict[str, Any] = {"known_pills": len(known), "unknown_pills": len(unknown)}
    if not unknown:
        out["note"] = ("no pill of this split is outside the class index: nothing to measure "
                       "(hold drugs out with data.exclude_k_codes; synthetic data: python -m "
                       "pillsnap.data synth --holdout-classes N)")
        return out
    answered_unknown = [a for a in unknown if a.pill is not None]
    if all(a.pill.get("open_set_score") is not None for a in known + answered_unknown):
        out.update(separation(_served(known), _served(answered_unknown)))
        out["twins_separation"] = separation(
            _served(known), _served([a for a in answered_unknown if a.truth.twin]))
        out["distinct_separation"] = separation(
            _served(known), _served([a for a in answered_unknown if not a.truth.twin]))
        out["per_drug"] = per_drug(known, unknown, drugs, low_confidence)
    for name, group in (("distinct", [a for a in unknown if not a.truth.twin]),
                        ("twins", [a for a in unknown if a.truth.twin])):
        out[name] = outcomes(group, low_confidence)
    out["all_unknown"] = outcomes(unknown, low_confidence)
    out["known_flagged_unknown"] = _share(sum(bool(a.pill.get("unknown")) for a in known),
                                          len(known))
    out["leaks"] = leaks(unknown, drugs, low_confidence)
    scored = [a for a in known + answered_unknown if a.scores is not None]
    if scored:  # the embedded runner's comparison of every score on the same answers
        out["scores"] = {kind: separation(
            [(a.photo, a.scores[kind]) for a in scored if a.truth.known],
            [(a.photo, a.scores[kind]) for a in scored if not a.truth.known])
            for kind in scored[0].scores}
    framed = [a for a in known + unknown if a.framing is not None]
    if framed:
        out["framing"] = framing(framed)
    return out


def _served(group: Sequence[Answered]) -> list[tuple[str, float]]:
    return [(a.photo, float(a.pill["open_set_score"])) for a in group if a.pill is not None]


def separation(known: Sequence[tuple[str, float]],
               unknown: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """AUROC with its photo-bootstrap interval, and the false-accept rate where ``TAR`` of
    the known pills are accepted (``(photo, score)`` pairs)."""
    k = [s for _, s in known]
    u = [s for _, s in unknown]
    threshold, far = metrics.fpr_at_tpr(k, u, TAR)
    return {"auroc": metrics.auroc(k, u), "auroc_ci95": bootstrap_auroc(known, unknown),
            f"far_at_tar{round(TAR * 100)}": far, "unknown": len(u),
            "threshold_at_tar": threshold if np.isfinite(threshold) else None}


def bootstrap_auroc(known: Sequence[tuple[str, float]], unknown: Sequence[tuple[str, float]],
                    draws: int = BOOTSTRAP, seed: int = 0) -> list[float] | None:
    """The 2.5% and 97.5% quantiles of the AUROC over ``draws`` resamples of the photos
    (known and unknown photos each with replacement); None with nothing to resample."""
    by_photo = [_group(known), _group(unknown)]
    if not all(by_photo):
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        sides = []
        for groups in by_photo:
            picked = rng.integers(0, len(groups), len(groups))
            sides.append(np.concatenate([groups[i] for i in picked]))
        values.append(metrics.auroc(sides[0], sides[1]))
    lo, hi = np.quantile(values, [0.025, 0.975])
    return [round(float(lo), 4), round(float(hi), 4)]


def _group(pairs: Sequence[tuple[str, float]]) -> list[np.ndarray]:
    grouped: dict[str, list[float]] = defaultdict(list)
    for photo, score in pairs:
        grouped[photo].append(score)
    return [np.asarray(v, dtype=np.float64) for v in grouped.values()]


def _named(a: Answered, low_confidence: float) -> bool:
    """Answered as a known drug with neither flag: what a user takes for an identification."""
    return (a.pill is not None and not a.pill.get("unknown")
            and a.confidence >= low_confidence)


def outcomes(group: Sequence[Answered], low_confidence: float) -> dict[str, Any]:
    flagged = sum(a.pill is not None and bool(a.pill.get("unknown")) for a in group)
    named = sum(_named(a, low_confidence) for a in group)
    return {"pills": len(group), "flagged_unknown": flagged,
            "flagged_share": _share(flagged, len(group)),
            "no_answer": sum(a.pill is None for a in group),
            "named_confidently": named, "named_confidently_share": _share(named, len(group))}


def per_drug(known: Sequence[Answered], unknown: Sequence[Answered], drugs: Drugs,
             low_confidence: float) -> list[dict[str, Any]]:
    """Each unknown drug against all known pills, worst AUROC first."""
    reference = _served(known)
    rows = []
    by_code: dict[str, list[Answered]] = defaultdict(list)
    for a in unknown:
        by_code[a.truth.k_code].append(a)
    for code, group in by_code.items():
        named = Counter(a.top1 for a in group if _named(a, low_confidence))
        answered = [a for a in group if a.pill is not None]
        rows.append({"k_code": code, "name": _name(drugs, code), "twin": group[0].truth.twin,
                     "pills": len(group), "auroc": metrics.auroc(
                         [s for _, s in reference], [s for _, s in _served(answered)]),
                     "flagged_unknown": sum(bool(a.pill.get("unknown")) for a in answered),
                     "named_confidently": sum(named.values()),
                     "named_as": named.most_common(1)[0][0] if named else None})
    rows.sort(key=lambda r: (r["auroc"], r["k_code"]))
    return rows


def leaks(unknown: Sequence[Answered], drugs: Drugs, low_confidence: float) -> list[dict[str, Any]]:
    """Unknown pills named with no flag, grouped by (true drug, drug named), each with both
    drugs' looks from the drug table: what a look-alike is made of."""
    pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for a in unknown:
        if _named(a, low_confidence) and a.top1 is not None:
            pairs[(a.truth.k_code, a.top1)].append(a.confidence)
    ranked = sorted(pairs.items(), key=lambda item: (-len(item[1]), item[0]))[:LEAKS]
    return [{"true": describe(drugs, true), "named": describe(drugs, named),
             "count": len(conf), "confidence_mean": round(float(np.mean(conf)), 4),
             "same_look": _same_look(drugs.get(true, {}), drugs.get(named, {}))}
            for (true, named), conf in ranked]


def describe(drugs: Drugs, code: str) -> dict[str, Any]:
    """One drug as a leak report shows it."""
    entry = drugs.get(code, {})
    return {"k_code": code, "name": _name(drugs, code), "shape": entry.get("shape"),
            "colors": [entry[c] for c in ("color1", "color2") if entry.get(c)],
            "imprints": [entry.get("print_front"), entry.get("print_back")],
            "material": entry.get("material"), "company": entry.get("company")}


def _same_look(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return bool(a) and bool(b) and all(a.get(k) == b.get(k) for k in ("shape", "color1",
                                                                       "color2"))


def lookalikes(drugs: Drugs, known: set[str]) -> dict[str, list[str]]:
    """Drug -> the known drugs that share its shape and colours in the drug table (its
    near twins among what the model learnt); drugs without such a twin are left out."""
    looks: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for code in sorted(known):
        entry = drugs.get(code)
        if entry and entry.get("shape"):
            looks[(entry.get("shape"), entry.get("color1"), entry.get("color2"))].append(code)
    out = {}
    for code, entry in drugs.items():
        if code in known or not entry.get("shape"):
            continue
        twins = looks.get((entry.get("shape"), entry.get("color1"), entry.get("color2")))
        if twins:
            out[code] = list(twins)
    return out


def framing(framed: Sequence[Answered]) -> dict[str, Any]:
    """The served score on crops of the labelled boxes against the detector's: what the
    framing costs. With how far the detector's boxes were (IoU) and how far that moved the
    features (cosine of served to labelled crop)."""
    served_known = [(a.photo, a.pill["open_set_score"]) for a in framed
                    if a.truth.known and a.pill is not None]
    served_unknown = [(a.photo, a.pill["open_set_score"]) for a in framed
                      if not a.truth.known and a.pill is not None]
    labelled_known = [(a.photo, a.framing["score"]) for a in framed if a.truth.known]
    labelled_unknown = [(a.photo, a.framing["score"]) for a in framed if not a.truth.known]
    ious = [a.framing["iou"] for a in framed if a.framing.get("iou") is not None]
    cosines = [a.framing["cosine"] for a in framed if a.framing.get("cosine") is not None]
    right = [a.framing["top1"] == a.truth.k_code for a in framed if a.truth.known]
    return {"labelled_boxes": separation(labelled_known, labelled_unknown),
            "detector_boxes": separation(served_known, served_unknown),
            "iou_median": float(np.median(ious)) if ious else None,
            "feature_cosine_median": float(np.median(cosines)) if cosines else None,
            "labelled_top1": _share(sum(right), len(right))}


def _name(drugs: Drugs, code: str) -> str | None:
    entry = drugs.get(code, {})
    return entry.get("name_ko") or entry.get("name_en")


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0
