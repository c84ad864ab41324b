"""The evaluation's unknown-drug analysis and its enrollment measure.

    python -m pytest tests/eval/test_unknown_drugs.py -q
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pillsnap.config import load_config
from pillsnap.config.schema import TargetsConfig
from pillsnap.contract.gallery import GALLERY_FILE
from pillsnap.eval.collect import Served
from pillsnap.eval.enrolled import enrolled_report
from pillsnap.eval.open_set import bootstrap_auroc, lookalikes
from pillsnap.eval.output import summary_text, write_outputs
from pillsnap.eval.report import build_report, enrolled_targets
from pillsnap.eval.samples import Sample, TruthPill, load_samples
from pillsnap.infer.bundle import read_recipe


def test_look_alikes_come_from_the_drug_table() -> None:
    drugs = {"K-1": {"shape": "원형", "color1": "하양", "color2": ""},
             "K-2": {"shape": "원형", "color1": "하양", "color2": ""},
             "K-3": {"shape": "원형", "color1": "노랑", "color2": ""},
             "K-4": {"shape": "장방형", "color1": "하양", "color2": ""},
             "K-5": {"name_ko": "no look recorded"}}
    assert lookalikes(drugs, {"K-1", "K-4"}) == {"K-2": ["K-1"]}


def test_the_bootstrap_interval_narrows_with_more_photos() -> None:
    few_known = [(f"k{i}", float(i % 10)) for i in range(20)]
    few_unknown = [(f"u{i}", float(i % 10) - 3) for i in range(10)]
    many_known = [(f"k{i}", float(i % 10)) for i in range(400)]
    many_unknown = [(f"u{i}", float(i % 10) - 3) for i in range(200)]
    few, many = bootstrap_auroc(few_known, few_unknown), bootstrap_auroc(many_known,
                                                                         many_unknown)
    assert few is not None and many is not None
    assert many[1] - many[0] < (few[1] - few[0]) / 2
    assert bootstrap_auroc(few_known, []) is None


def _pill(code: str, score: float, box: list[float], *, unknown: bool = False) -> dict[str, Any]:
    return {"top1": {"k_code": code, "confidence": 0.9},
            "candidates": [{"k_code": code, "confidence": 0.9}], "unknown": unknown,
            "open_set_score": score, "bbox": box, "det_confidence": 0.9}


def test_combination_photos_alone_give_the_open_set_figures_and_plot(tmp_path: Path) -> None:
    """Real AIHub splits can hold only combination photos: the unknown pills among them are
    scored, plotted and framed like single-pill photos' (labelled crops vs detector's)."""
    a, b = (0.0, 0.0, 10.0, 10.0), (20.0, 20.0, 30.0, 30.0)
    served = []
    for i in range(6):
        sample = Sample(Path(f"c{i}"), f"c{i}", "combo",
                        (TruthPill("K-A", a, True), TruthPill(f"K-U{i % 2}", b, False)))
        pills = [_pill("K-A", 5.0 + i, list(a)),
                 _pill("K-A", 1.0 + i / 10, list(b), unknown=i % 2 == 0)]
        framing = [{"score": 6.0 + i, "top1": "K-A", "iou": 0.9, "cosine": 0.95},
                   {"score": 0.5, "top1": "K-A", "iou": 0.8, "cosine": 0.9}]
        served.append(Served(sample, pills, None, {"total": 5.0}, 5.0, framing=framing))
    report = build_report(served, backend="embedded", low_confidence=0.5,
                          targets=TargetsConfig(), drugs={})
    open_set = report["open_set"]
    assert open_set["unknown_pills"] == 6 and open_set["auroc"] == 1.0
    framing = open_set["framing"]
    assert framing["labelled_boxes"]["auroc"] == 1.0
    assert framing["iou_median"] == pytest.approx(0.85)
    assert framing["feature_cosine_median"] == pytest.approx(0.925)
    assert framing["labelled_top1"] == 1.0
    # every known pill identified; the unknown ones half flagged: all right photos are the
    # ones whose unknown pill was flagged
    assert report["combo"]["identified"] == 1.0 and report["combo"]["all_right_photos"] == 0.5
    report["open_set"]["served"] = {"score": "mahalanobis", "threshold": 2.0}
    paths = write_outputs(report, served, tmp_path)
    assert paths.get("open_set") is not None and paths["open_set"].is_file()
    assert "framing: labelled boxes AUROC 1.000" in summary_text(report)


def test_eval_enroll_measures_drugs_enrolled_from_their_training_photos(
        one_box_export: Callable[[Path], Path], new_drug: dict[str, Any],
        trained: dict[str, Path], tmp_path: Path) -> None:
    export = one_box_export(tmp_path / "export")
    gallery = (export / GALLERY_FILE).read_bytes()
    known = read_recipe(export).k_codes
    samples = [s for s in load_samples(trained["manifest"], trained["base"] / "aihub", "val",
                                       known=set(known)) if s.kind == "single"]
    samples += load_samples(new_drug["manifest"], new_drug["root"], "val", known=set(known))
    cfg = load_config(None, [f"data.manifest_dir={new_drug['manifest']}",
                             f"data.root={new_drug['root']}"], env_file=None, environ={})
    report = enrolled_report(cfg, export, samples, shots=(1, 3, 5))
    one, three, five = report["shots"]
    assert (one["photos"], one["drugs"], one["pills"]) == (1, 1, 1)  # its 1 val photo
    assert (three["drugs"], five["drugs"]) == (1, 0)  # 4 training photos: not 5
    assert report["skipped"] == [f"{new_drug['k_code']}: 4 training photos, fewer than 5"]
    for row in (one, three):
        assert 0.0 <= row["top1"] <= 1.0
        assert row["known_change"] == pytest.approx(row["known_top1"] - row["known_top1_before"])
    # measured in copies: the export served is untouched
    assert (export / GALLERY_FILE).read_bytes() == gallery and not (export / "enrolled").exists()
    rows = enrolled_targets({"shots": [{**three, "photos": 5}]}, TargetsConfig())
    assert [r["name"] for r in rows] == ["enrolled drugs top-1 (5 photos)",
                                         "known top-1 change after enrolling (5 photos)"]
    json.dumps(report)  # JSON-ready for eval_report.json
