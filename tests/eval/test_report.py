"""Every figure of ``pillsnap.eval`` on hand-made answers whose right values can be counted.

    PYTHONPATH=python python -m pytest tests/eval/test_report.py -q

Nine photos: three single-pill photos of known drugs (one wrong, one classified as the whole
photo), three of drugs outside the class index (one flagged, one named confidently, one near
twin answered with low confidence), two combination photos (one with a miss, a wrong K-code
and an extra box; one all right) and one photo whose call failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pillsnap.config.schema import TargetsConfig
from pillsnap.contract import ops
from pillsnap.eval.collect import Served
from pillsnap.eval.output import agreement, summary_text, write_outputs
from pillsnap.eval.report import build_report
from pillsnap.eval.samples import Sample, TruthPill

Box = tuple[float, float, float, float]


def _pill(code: str, conf: float, score: float, *, unknown: bool = False,
          box: Box | None = None, det: float | None = None,
          second: str = "K-B") -> dict[str, Any]:
    pill: dict[str, Any] = {
        "top1": {"k_code": code, "confidence": conf},
        "candidates": [{"k_code": code, "confidence": conf},
                       {"k_code": second, "confidence": 1 - conf}],
        "unknown": unknown, "open_set_score": score}
    if box is not None:
        pill |= {"bbox": list(box), "det_confidence": det}
    return pill


def _single(name: str, code: str, answer: dict[str, Any] | None, *, known: bool = True,
            twin: bool = False, ms: float = 10.0, reason: str | None = None) -> Served:
    sample = Sample(Path(name), name, "single", (TruthPill(code, (0, 0, 10, 10), known, twin),))
    return Served(sample, [answer] if answer else [], reason, {"decode": 1.0, "total": ms},
                  wall_ms=ms)


def _combo(name: str, truths: list[tuple[str, Box]], pills: list[dict[str, Any]],
           ms: float) -> Served:
    sample = Sample(Path(name), name, "combo",
                    tuple(TruthPill(code, box, True) for code, box in truths))
    return Served(sample, pills, None, {"detect": 5.0, "total": ms}, wall_ms=ms)


@pytest.fixture
def served() -> list[Served]:
    a, b, c = (0, 0, 10, 10), (20, 20, 30, 30), (40, 40, 50, 50)
    return [
        _single("s1", "K-A", _pill("K-A", 0.9, 5.0), ms=10),
        _single("s2", "K-B", _pill("K-A", 0.6, 3.0, unknown=True), ms=20),
        _single("s3", "K-A", _pill("K-A", 0.8, 6.0), ms=30, reason=ops.WHOLE_PHOTO),
        _single("u1", "K-X", _pill("K-B", 0.95, 1.0, unknown=True), known=False, ms=40),
        _single("u2", "K-Y", _pill("K-A", 0.97, 4.0), known=False, ms=50),
        _single("u3", "K-Z", _pill("K-A", 0.4, 2.0), known=False, twin=True, ms=60),
        # a found and right, b found with the wrong K-code, c missed, one extra box
        _combo("c1", [("K-A", a), ("K-B", b), ("K-C", c)],
               [_pill("K-A", 0.7, 7.0, box=a, det=0.9), _pill("K-A", 0.5, 2.5, box=b, det=0.8),
                _pill("K-B", 0.9, 9.5, box=(60, 60, 70, 70), det=0.7)], ms=100),
        _combo("c2", [("K-A", a), ("K-C", (20, 0, 30, 10))],
               [_pill("K-A", 0.99, 8.0, box=a, det=0.95),
                _pill("K-C", 0.98, 9.0, box=(20, 0, 30, 10), det=0.85)], ms=200),
        Served(Sample(Path("bad"), "bad", "single", (TruthPill("K-A", a, True),)),
               error="CorruptImage: truncated"),
    ]


@pytest.fixture
def report(served: list[Served]) -> dict[str, Any]:
    return build_report(served, backend="embedded", low_confidence=0.5,
                        targets=TargetsConfig(), top_k=5,
                        drugs={"K-A": {"name_ko": "가정"}, "K-B": {"name_en": "Bee"}})


def test_photo_counts_and_failures(report: dict[str, Any]) -> None:
    assert report["photos"] == {"total": 9, "single": 7, "combo": 2,
                                "failed": [{"photo": "bad", "error": "CorruptImage: truncated"}]}


def test_single_pill_figures(report: dict[str, Any]) -> None:
    # s1 right, s2 wrong (its second candidate is right), s3 right from the whole photo
    assert report["single"] == {"photos": 3, "top1": pytest.approx(2 / 3), "top5": 1.0,
                                "whole_photo": 1, "no_answer": 0}


def test_combination_figures(report: dict[str, Any]) -> None:
    combo = report["combo"]
    # boxes by score: .95 hit, .9 hit, .85 hit, .8 hit, .7 extra; 5 pills -> AP 0.8
    assert combo["map50"] == pytest.approx(0.8)
    assert combo["map50_95"] == pytest.approx(0.8)  # every hit is an exact box
    assert (combo["photos"], combo["pills"], combo["extra_boxes"]) == (2, 5, 1)
    assert combo["pill_recall"] == pytest.approx(4 / 5)
    assert combo["identified"] == pytest.approx(3 / 5) and combo["known_pills"] == 5
    assert combo["all_right_photos"] == pytest.approx(1 / 2)


def test_selective_prediction_and_calibration(report: dict[str, Any]) -> None:
    sel = report["selective"]
    # known answers: s1 .9 ok, s2 .6 wrong, s3 .8 ok, c1 .7 ok, c1 .5 wrong, c2 .99/.98 ok
    assert sel["answers"] == 7 and sel["accuracy"] == pytest.approx(5 / 7)
    assert sel["threshold_for_0.99"] == {"threshold": 0.7, "coverage": pytest.approx(5 / 7)}
    assert sel["curve"]["coverage"][-1] == 1.0
    assert sel["calibration"]["ece"] == pytest.approx(
        (abs(1 - 0.985) * 2 + abs(1 - 0.9) + abs(1 - 0.8) + abs(1 - 0.7) + 0.6 + 0.5) / 7)


def test_unknown_drug_figures(report: dict[str, Any]) -> None:
    open_set = report["open_set"]
    assert (open_set["known_pills"], open_set["unknown_pills"]) == (7, 3)
    # known scores 5, 3, 6, 7, 2.5, 8, 9 against the unknowns 1, 4 and 2: 19 of 21
    assert open_set["auroc"] == pytest.approx(19 / 21)
    lo, hi = open_set["auroc_ci95"]  # photos resampled: an interval around it
    assert 0.5 <= lo <= open_set["auroc"] <= hi <= 1.0 and hi - lo > 0.05
    # accepting 95% of 7 known pills takes all 7 (threshold 2.5): it lets 4 through
    assert open_set["far_at_tar95"] == pytest.approx(1 / 3)
    assert open_set["threshold_at_tar"] == 2.5
    assert open_set["distinct_separation"]["auroc"] == pytest.approx(12 / 14)
    assert open_set["twins_separation"]["auroc"] == pytest.approx(7 / 7)
    assert open_set["distinct"] == {"pills": 2, "flagged_unknown": 1, "flagged_share": 0.5,
                                    "no_answer": 0, "named_confidently": 1,
                                    "named_confidently_share": 0.5}
    # the twin was named, but under serve.low_confidence: not a confident wrong name
    assert open_set["twins"]["named_confidently"] == 0 and open_set["twins"]["pills"] == 1
    assert open_set["all_unknown"]["named_confidently_share"] == pytest.approx(1 / 3)
    assert open_set["known_flagged_unknown"] == pytest.approx(1 / 7)
    # per unknown drug, worst first; the leak names both drugs with their looks
    assert [(d["k_code"], d["auroc"], d["named_as"]) for d in open_set["per_drug"]] == [
        ("K-Y", pytest.approx(5 / 7), "K-A"), ("K-X", 1.0, None), ("K-Z", 1.0, None)]
    [leak] = open_set["leaks"]
    assert leak["true"]["k_code"] == "K-Y" and leak["named"] == {
        "k_code": "K-A", "name": "가정", "shape": None, "colors": [], "imprints": [None, None],
        "material": None, "company": None}
    assert leak["count"] == 1 and leak["confidence_mean"] == 0.97


def test_every_pill_s_outcome_known_and_unknown_apart(report: dict[str, Any]) -> None:
    pills = report["pills"]
    # known: s1 right, s2 flagged (wrong), s3 right, c1: a right, b wrong, c missed;
    # c2: both right -> 5 of 8 identified; unknown: u1 flagged, u2 and u3 not
    assert pills["known"] == {"pills": 8, "identified": 5 / 8, "flagged_unknown": 1 / 8,
                              "wrong_drug": 1 / 8, "not_found": 1 / 8}
    assert pills["unknown"] == {"pills": 3, "flagged_unknown": 1 / 3, "not_found": 0.0}
    assert pills["total"] == 11 and pills["right_answers"] == pytest.approx(6 / 11)


def test_latency_classes_and_targets(report: dict[str, Any]) -> None:
    single = report["latency_ms"]["single"]
    assert single["n"] == 6 and single["p50"] == 35.0 and single["stages_p50"]["decode"] == 1.0
    assert report["latency_ms"]["combo"]["p95"] == pytest.approx(195.0)
    assert report["classes"]["worst"][0] == {"k_code": "K-B", "accuracy": 0.0, "support": 2,
                                             "name": "Bee"}
    assert report["classes"]["most_confused"] == [
        {"true": "K-B", "predicted": "K-A", "count": 2, "true_name": "Bee",
         "predicted_name": "가정"}]
    verdicts = {t["name"]: t["pass"] for t in report["targets"]}
    assert verdicts == {"single top-1": False, "combo mAP@0.5": False,
                        "combo known pills identified": False, "open-set AUROC": False,
                        "unknown pills named with no flag": False,
                        "known pills flagged unknown": False,
                        "single p95 latency ms": True, "combo p95 latency ms": False}


def test_the_embedded_runner_s_score_comparison(served: list[Served]) -> None:
    for s in served:
        s.scores = [{"msp": p["top1"]["confidence"], "max_logit": p["open_set_score"],
                     "energy": -p["open_set_score"]} for p in s.pills]
    report = build_report(served, backend="embedded", low_confidence=0.5,
                          targets=TargetsConfig())
    scores = report["open_set"]["scores"]
    assert scores["max_logit"]["auroc"] == pytest.approx(19 / 21)
    assert scores["energy"]["auroc"] == pytest.approx(2 / 21)  # the same order, reversed


def test_agreement_and_written_files(served: list[Served], report: dict[str, Any],
                                     tmp_path: Path) -> None:
    assert agreement(served, served)["same_answer"] == 1.0
    other = [Served(s.sample, [dict(p, unknown=not p["unknown"]) for p in s.pills], s.reason,
                    s.timing_ms, s.wall_ms, s.error) if s.sample.name in ("s1", "c2") else s
             for s in served]
    assert agreement(served, other) == {"photos": 8, "same_answer": 0.75,
                                        "different": ["s1", "c2"]}
    report["open_set"]["served"] = {"score": "max_logit", "threshold": 2.7}
    paths = write_outputs(report, served, tmp_path)
    assert paths["report"].is_file() and paths["summary"].read_text(encoding="utf-8") == \
        summary_text(report)
    for plot in ("risk_coverage", "reliability", "open_set"):
        assert paths[plot] is not None and paths[plot].read_bytes()[:4] == b"\x89PNG"
    text = summary_text(report)
    assert "FAIL single top-1: 0.667 >= 0.92" in text and "PASS single p95 latency" in text
    assert "distinct: 2 unknown pills, 1 flagged unknown, 1 named as a known drug" in text
