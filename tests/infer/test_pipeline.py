"""The in-process ONNX Runtime pipeline over an export folder, and what training saw.

    PYTHONPATH=python python -m pytest tests/infer/test_pipeline.py -q
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pillsnap.contract import ops
from pillsnap.contract.recipe import Recipe
from pillsnap.data.manifest import read_manifest
from pillsnap.errors import CorruptImageError, ModelError, UnsupportedImageError
from pillsnap.export.metadata import write_recipe
from pillsnap.infer.bundle import read_recipe
from pillsnap.infer.pipeline import OnnxPipeline


def test_serving_crops_match_the_eval_loader_s_packed_crops(
        trained: dict[str, Path], native_module: object) -> None:
    """A labelled pill cut from the original photo by ops looks like its val-pack record."""
    rows = [r for r in read_manifest(trained["manifest"]) if r.split == "val"]
    reader = native_module.PackReader(str(trained["packs"] / "val.pack"))
    size, margin, short_side = 32, 0.15, 40
    out = np.zeros((size, size, 3), dtype=np.uint8)
    diffs, wrong = [], []
    for i in range(len(reader)):
        source = reader.meta(i)["source_id"]
        row, pill = rows[source >> 8], source & 0xFF  # the pack's row << 8 | pill number
        native_module.decode_eval_sample(reader.record(i), size, out)
        image = ops.decode_image((trained["base"] / "aihub" / row.path).read_bytes())
        region = ops.pill_crop(row.pills[pill].bbox, row.width, row.height, margin)
        ours = ops.classifier_crops(image, [region], size=size, short_side=short_side)[0]
        diffs.append(np.abs(ours.astype(int) - out.astype(int)).mean())
        tight = ops.pill_crop(row.pills[pill].bbox, row.width, row.height, 0.0)
        other = ops.classifier_crops(image, [tight], size=size, short_side=short_side)[0]
        wrong.append(np.abs(other.astype(int) - out.astype(int)).mean())
    # the pack's JPEG q90 costs about 4 grey levels on these tiny, sharp synthetic crops (the
    # same crops re-encoded by encode_jpeg differ as much); a wrong margin costs far more
    assert np.mean(diffs) < 5.0 and max(diffs) < 8.0, diffs
    assert np.mean(wrong) > 2 * np.mean(diffs), (np.mean(wrong), np.mean(diffs))


def test_single_and_combo_answers(exported: Path, trained: dict[str, Path]) -> None:
    pipe = OnnxPipeline.open(exported, max_batch=2)
    assert pipe.pipelines == ("single", "combo")
    photo = sorted((trained["base"] / "aihub").rglob("*_단일/*/*.png"))[0]
    answer = pipe.predict(photo.read_bytes(), pipeline="single", top_k=3)
    assert answer["pipeline"] == "single" and len(answer["pills"]) == 1
    assert answer["recommend_combo"] is False
    pill = answer["pills"][0]
    assert len(pill["candidates"]) == 3 and pill["top1"] == pill["candidates"][0]
    confidences = [c["confidence"] for c in pill["candidates"]]
    assert confidences == sorted(confidences, reverse=True) and sum(confidences) <= 1.0 + 1e-6
    drugs = json.loads((exported / "drugs.json").read_text(encoding="utf-8"))
    assert pill["top1"]["edi_codes"] == drugs[pill["top1"]["k_code"]]["edi_codes"]
    stages = {"decode", "preprocess", "classify", "postprocess", "total"}
    assert stages <= answer["timing_ms"].keys()
    assert answer["model_version"].count("+") == 1  # classifier + detector versions
    json.dumps(answer)  # the answer is JSON-ready

    combo = sorted((trained["base"] / "aihub").rglob("*_조합/*/*.png"))[0].read_bytes()
    answer = pipe.predict(combo, pipeline="combo")
    assert answer["recommend_combo"] is False
    if not answer["pills"]:  # the three-epoch detector rarely passes conf 0.25
        assert answer["reason"] == "no pill found"
    # at ultralytics' validation threshold it finds boxes: each is cropped and classified,
    # one crop per call (max_batch=1), and chunking does not change the answer
    pipe.max_batch = 1
    pipe.recipe = _conf(pipe, 0.001)
    many = pipe.predict(combo, pipeline="combo", top_k=2)
    assert len(many["pills"]) >= 2 and "detect" in many["timing_ms"]
    assert all(len(p["bbox"]) == 4 and 0 < p["det_confidence"] <= 1 for p in many["pills"])
    one_call = OnnxPipeline.open(exported, max_batch=64)
    one_call.recipe = _conf(one_call, 0.001)
    again = one_call.predict(combo, pipeline="combo", top_k=2)
    assert [p["top1"]["confidence"] for p in again["pills"]] == pytest.approx(
        [p["top1"]["confidence"] for p in many["pills"]], abs=1e-5)


def test_single_classifies_the_best_box_and_recommends_combo(exported: Path,
                                                             trained: dict[str, Path]) -> None:
    """The classifier learnt pill crops: single mode crops the detector's best box as combo
    does, and 2+ detections only recommend combo."""
    pipe = OnnxPipeline.open(exported)
    assert pipe.recipe.crop.region == "pill" and pipe.single_detects
    combo = sorted((trained["base"] / "aihub").rglob("*_조합/*/*.png"))[0].read_bytes()
    pipe.recipe = _conf(pipe, 0.001)
    many = pipe.predict(combo, pipeline="combo", top_k=2)
    single = pipe.predict(combo, pipeline="single", top_k=2)
    assert len(many["pills"]) >= 2 and many["recommend_combo"] is False
    assert single["recommend_combo"] is True and single["reason"] is None
    assert single["pills"] == many["pills"][:1]  # the best box, cropped and classified alike
    assert "detect" in single["timing_ms"]

    # no box found: the whole photo is classified, and the answer says so
    pipe.recipe = _conf(pipe, 1.0)
    fallback = pipe.predict(combo, pipeline="single")
    assert fallback["reason"] == ops.WHOLE_PHOTO and fallback["recommend_combo"] is False
    assert len(fallback["pills"]) == 1 and "bbox" not in fallback["pills"][0]
    assert pipe.predict(combo, pipeline="combo")["pills"] == []

    # a classifier trained on whole photos gets the whole photo, detector or not
    pipe.recipe = _conf(pipe, 0.001)
    pipe.bundle.recipe = pipe.recipe.replace(crop=replace(pipe.recipe.crop, region="image"))
    whole = OnnxPipeline(pipe.bundle).predict(combo, pipeline="single")
    assert whole["reason"] is None and whole["recommend_combo"] is False
    assert "bbox" not in whole["pills"][0] and "detect" not in whole["timing_ms"]
    assert whole["pills"][0]["candidates"] == fallback["pills"][0]["candidates"]


def _conf(pipe: OnnxPipeline, conf: float) -> Recipe:
    """The pipeline's recipe with the detector's threshold at ``conf``."""
    assert pipe.recipe.detector is not None
    return pipe.recipe.replace(detector=replace(pipe.recipe.detector, conf=conf))


def _single_only(exported: Path, folder: Path) -> Path:
    shutil.copytree(exported, folder, ignore=shutil.ignore_patterns("detector"))
    record = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    record["detector"] = None
    (folder / "export.json").write_text(json.dumps(record), encoding="utf-8")
    write_recipe(folder, read_recipe(folder).replace(detector=None))
    return folder


def test_single_without_a_detector_warns_once_and_uses_the_whole_photo(
        exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    photo = next((exported.parent / "aihub").rglob("*.png")).read_bytes()
    with caplog.at_level("WARNING", logger="pillsnap.infer.pipeline"):
        pipe = OnnxPipeline.open(_single_only(exported, tmp_path / "single"))
        answer = pipe.predict(photo)
        pipe.predict(photo)
    warnings = [r for r in caplog.records if "no detector" in r.getMessage()]
    assert len(warnings) == 1 and "--det-ckpt" in warnings[0].getMessage()
    assert len(answer["pills"]) == 1 and answer["reason"] is None
    assert answer["recommend_combo"] is False and "detect" not in answer["timing_ms"]


def test_bad_input_and_incomplete_exports_get_clear_errors(exported: Path,
                                                           tmp_path: Path) -> None:
    pipe = OnnxPipeline.open(exported)
    with pytest.raises(UnsupportedImageError, match="not an image"):
        pipe.predict(b"%PDF-1.4 not a photo")
    photo = next((exported.parent / "aihub").rglob("*.png")).read_bytes()
    with pytest.raises(CorruptImageError):
        pipe.predict(photo[: len(photo) // 2])
    with pytest.raises(ModelError, match="pipeline='triple'"):
        pipe.predict(photo, pipeline="triple")

    single_only = _single_only(exported, tmp_path / "single")
    with pytest.raises(ModelError, match="not available here; choose one of single"):
        OnnxPipeline.open(single_only).predict(photo, pipeline="combo")

    (single_only / "export.json").unlink()
    with pytest.raises(ModelError, match="not a finished export"):
        OnnxPipeline.open(single_only)
