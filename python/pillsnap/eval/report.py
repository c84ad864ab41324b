"""Turn served answers into the evaluation's figures: ``build_report(served, ...)``.

    report = build_report(served, backend="embedded", low_confidence=0.5, targets=cfg.targets)
    report["single"]["top1"], report["open_set"]["auroc"], report["targets"]

What each figure counts (tests/eval/test_report.py checks every one on hand-made answers):
- single-pill photos: the answer's first pill against the photo's one pill; no pill at all
  is a miss; ``whole_photo`` counts answers that fell back to classifying the whole photo;
- combination photos: served boxes (scored by ``det_confidence``) against the labelled
  boxes for mAP@0.5 and mAP@0.5:0.95; a labelled pill is *found* when a box matches it at
  IoU 0.5 and *identified* when that box's top-1 is its K-code; a photo is *all right*
  when every pill is identified and no box is left over;
- identification answers (single photos, and combo boxes matched to a known pill) feed the
  selective-prediction curve, the calibration and the worst classes;
- every labelled pill, known or not (``pills``): a known pill is *identified* when its
  answer names it and does not flag it unknown, an unknown pill is answered right when it
  is flagged ``unknown``; ``right_answers`` counts both (the share of pills a user got the
  right answer for), known and unknown pills are reported apart;
- combination photos: *identified* counts the known pills, *all right* photos have every
  known pill identified, every unknown one flagged and no box left over;
- open set (``pillsnap.eval.open_set``): AUROC with its bootstrap interval, per unknown
  drug, the leaks with both drugs' looks, the labelled-box framing against the detector's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pillsnap.config.schema import TargetsConfig
from pillsnap.contract import ops
from pillsnap.eval import metrics
from pillsnap.eval.collect import Served
from pillsnap.eval.open_set import open_set_report
from pillsnap.eval.samples import TruthPill

SELECTIVE_TARGET = 0.99  # the accuracy a confidence threshold is sought for
CURVE_POINTS = 101  # risk-coverage points kept in the JSON report


@dataclass(frozen=True)
class Answered:
    """One labelled pill and the served pill that answers for it (None: nothing did)."""

    truth: TruthPill
    pill: dict[str, Any] | None
    scores: dict[str, float] | None  # every open-set score (embedded runner only)
    photo: str = ""  # the sample's name: the bootstrap resamples photos
    framing: dict[str, Any] | None = None  # the labelled box's crop (embedded runner only)

    @property
    def top1(self) -> str | None:
        return None if self.pill is None else str(self.pill["top1"]["k_code"])

    @property
    def correct(self) -> bool:
        return self.top1 == self.truth.k_code

    @property
    def flagged(self) -> bool:
        return self.pill is not None and bool(self.pill.get("unknown"))

    @property
    def right(self) -> bool:
        """The right answer: a known pill named (and not flagged), an unknown one flagged."""
        if self.truth.known:
            return self.correct and not self.flagged
        return self.flagged

    @property
    def confidence(self) -> float:
        return 0.0 if self.pill is None else float(self.pill["top1"]["confidence"])


def build_report(served: list[Served], *, backend: str, low_confidence: float,
                 targets: TargetsConfig, top_k: int = 5,
                 drugs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Every figure of the evaluation as JSON-ready data (see the module docstring)."""
    ok = [s for s in served if s.error is None]
    answered = list(answered_pills(ok))
    known = [a for a in answered if a.truth.known and a.pill is not None]
    report: dict[str, Any] = {
        "backend": backend,
        "photos": {"total": len(served),
                   "single": sum(s.sample.kind != "combo" for s in served),
                   "combo": sum(s.sample.kind == "combo" for s in served),
                   "failed": [{"photo": s.sample.name, "error": s.error}
                              for s in served if s.error is not None]},
        "single": _single(ok, top_k),
        "combo": _combo(ok),
        "pills": _pills(answered),
        "selective": _selective(known),
        "open_set": open_set_report(answered, low_confidence=low_confidence,
                                    drugs=drugs or {}),
        "latency_ms": _latency(ok),
        "classes": _classes(known, drugs or {}),
    }
    report["targets"] = _targets(report, targets)
    return report


def answered_pills(served: list[Served]) -> Iterator[Answered]:
    """Every labelled pill of the photos that got an answer, with the served pill that
    answers for it (a combination photo's boxes matched at IoU 0.5)."""
    for s in served:
        scores = s.scores or [None] * len(s.pills)
        framing = s.framing or [None] * len(s.sample.pills)
        if s.sample.kind != "combo":
            truth = s.sample.pills[0]
            yield Answered(truth, s.pills[0] if s.pills else None,
                           scores[0] if s.pills else None, s.sample.name, framing[0])
            continue
        boxes, det = _boxes(s.pills)
        match = metrics.match_pills(boxes, det, np.array([p.box for p in s.sample.pills]))
        for t_index, truth in enumerate(s.sample.pills):
            hit = np.flatnonzero(match == t_index)
            i = int(hit[0]) if hit.size else None
            yield Answered(truth, None if i is None else s.pills[i],
                           None if i is None else scores[i], s.sample.name, framing[t_index])


def _boxes(pills: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([p["bbox"] for p in pills if p.get("bbox")], dtype=np.float32)
    scores = np.array([p["det_confidence"] for p in pills if p.get("bbox")], dtype=np.float32)
    return boxes.reshape(-1, 4), scores


def _single(served: list[Served], top_k: int) -> dict[str, Any]:
    rows = [s for s in served if s.sample.kind != "combo" and s.sample.pills[0].known]
    truth = [s.sample.pills[0].k_code for s in rows]
    ranked = [[c["k_code"] for c in s.pills[0]["candidates"]] if s.pills else [] for s in rows]
    return {"photos": len(rows), "top1": metrics.top_k_accuracy(ranked, truth, 1),
            f"top{top_k}": metrics.top_k_accuracy(ranked, truth, top_k),
            "whole_photo": sum(s.reason == ops.WHOLE_PHOTO for s in rows),
            "no_answer": sum(not s.pills for s in rows)}


def _combo(served: list[Served]) -> dict[str, Any]:
    rows = [s for s in served if s.sample.kind == "combo"]
    predictions = [_boxes(s.pills) for s in rows]
    truths = [np.array([p.box for p in s.sample.pills], dtype=np.float32) for s in rows]
    found = identified = all_right = extra = pills = known = 0
    for s, (boxes, det), truth in zip(rows, predictions, truths, strict=True):
        match = metrics.match_pills(boxes, det, truth)
        answers = [Answered(t, s.pills[int(np.flatnonzero(match == i)[0])]
                            if (match == i).any() else None, None)
                   for i, t in enumerate(s.sample.pills)]
        pills += len(truth)
        known += sum(a.truth.known for a in answers)
        found += int((match >= 0).sum())
        identified += sum(a.truth.known and a.right for a in answers)
        extra += int((match < 0).sum())
        all_right += all(a.right for a in answers) and len(s.pills) == len(truth)
    return {"photos": len(rows), "pills": pills, "known_pills": known,
            "map50": metrics.map50(predictions, truths) if rows else 0.0,
            "map50_95": metrics.map_range(predictions, truths) if rows else 0.0,
            "pill_recall": _share(found, pills), "identified": _share(identified, known),
            "all_right_photos": _share(all_right, len(rows)), "extra_boxes": extra}


def _pills(answered: list[Answered]) -> dict[str, Any]:
    """Every labelled pill's outcome, known and unknown apart, and the right-answer rate."""
    known = [a for a in answered if a.truth.known]
    unknown = [a for a in answered if not a.truth.known]
    return {
        "total": len(answered), "right_answers": _share(sum(a.right for a in answered),
                                                        len(answered)),
        "known": {"pills": len(known), "identified": _share(sum(a.right for a in known),
                                                            len(known)),
                  "flagged_unknown": _share(sum(a.flagged for a in known), len(known)),
                  "wrong_drug": _share(sum(a.pill is not None and not a.correct
                                           and not a.flagged for a in known), len(known)),
                  "not_found": _share(sum(a.pill is None for a in known), len(known))},
        "unknown": {"pills": len(unknown),
                    "flagged_unknown": _share(sum(a.flagged for a in unknown), len(unknown)),
                    "not_found": _share(sum(a.pill is None for a in unknown), len(unknown))},
    }


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def _selective(known: list[Answered]) -> dict[str, Any]:
    confidence = [a.confidence for a in known]
    correct = [a.correct for a in known]
    curve = metrics.risk_coverage(confidence, correct)
    keep = np.unique(np.linspace(0, max(len(curve["threshold"]) - 1, 0),
                                 CURVE_POINTS).round().astype(int)) if confidence else []
    reached = metrics.threshold_for_accuracy(confidence, correct, SELECTIVE_TARGET)
    return {"answers": len(known), "accuracy": float(np.mean(correct)) if known else 0.0,
            "curve": {k: [round(float(v), 6) for v in np.asarray(curve[k])[keep]]
                      for k in ("threshold", "coverage", "accuracy")},
            f"threshold_for_{SELECTIVE_TARGET:g}": None if reached is None else
            {"threshold": reached[0], "coverage": reached[1]},
            "calibration": metrics.calibration(confidence, correct)}


def _latency(served: list[Served]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pipeline in ("single", "combo"):
        rows = [s for s in served if (s.sample.kind == "combo") == (pipeline == "combo")]
        if not rows:
            continue
        stages = sorted({k for s in rows for k in s.timing_ms if k != "total"})
        out[pipeline] = {**metrics.latency_summary([s.wall_ms for s in rows]),
                         "stages_p50": {k: float(np.median([s.timing_ms.get(k, 0.0)
                                                            for s in rows])) for k in stages}}
    return out


def _classes(known: list[Answered], drugs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    truth = [a.truth.k_code for a in known]
    predicted = [a.top1 or "" for a in known]

    def name(code: str) -> str | None:
        entry = drugs.get(code, {})
        return entry.get("name_ko") or entry.get("name_en")

    worst = [{**row, "name": name(row["k_code"])}
             for row in metrics.worst_classes(truth, predicted)]
    pairs = [{**row, "true_name": name(row["true"]), "predicted_name": name(row["predicted"])}
             for row in metrics.confused_pairs(truth, predicted)]
    return {"worst": worst, "most_confused": pairs}


def _targets(report: dict[str, Any], targets: TargetsConfig) -> list[dict[str, Any]]:
    rows = []
    if report["single"]["photos"]:
        rows.append(("single top-1", report["single"]["top1"], targets.single_top1, ">="))
    if report["combo"]["photos"]:
        rows.append(("combo mAP@0.5", report["combo"]["map50"], targets.combo_map50, ">="))
    if report["combo"]["known_pills"]:
        rows.append(("combo known pills identified", report["combo"]["identified"],
                     targets.combo_identified, ">="))
    open_set = report["open_set"]
    if open_set["unknown_pills"] and "auroc" in open_set:
        rows += [("open-set AUROC", open_set["auroc"], targets.open_set_auroc, ">="),
                 ("unknown pills named with no flag",
                  open_set["all_unknown"]["named_confidently_share"],
                  targets.unknown_named_max, "<="),
                 ("known pills flagged unknown", open_set["known_flagged_unknown"],
                  targets.known_flagged_max, "<=")]
    for pipeline, lat in report["latency_ms"].items():
        rows.append((f"{pipeline} p95 latency ms", lat["p95"], targets.p95_latency_ms, "<="))
    return [{"name": name, "value": value, "target": target, "op": op,
             "pass": value >= target if op == ">=" else value <= target}
            for name, value, target, op in rows]


def enrolled_targets(enrolled: dict[str, Any], targets: TargetsConfig,
                     photos: int = 5) -> list[dict[str, Any]]:
    """The enrolled drugs' target rows (``--enroll`` with ``photos`` among its counts):
    their top-1, and the known drugs' top-1 within a point of before."""
    row = next((r for r in enrolled["shots"] if r["photos"] == photos and r["drugs"]), None)
    if row is None:
        return []
    return [{"name": f"enrolled drugs top-1 ({photos} photos)", "value": row["top1"],
             "target": targets.enrolled_top1, "op": ">=",
             "pass": row["top1"] >= targets.enrolled_top1},
            {"name": f"known top-1 change after enrolling ({photos} photos)",
             "value": row["known_change"], "target": -0.01, "op": ">=",
             "pass": row["known_change"] >= -0.01}]
