"""``python -m pillsnap.export``: ONNX files, metadata, parity reports, clear failures.

    PYTHONPATH=python python -m pytest tests/export -q
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pillsnap.config import PillsnapConfig
from pillsnap.contract import ops
from pillsnap.contract.gallery import Gallery
from pillsnap.contract.recipe import METADATA_KEY, Recipe
from pillsnap.errors import ParityError
from pillsnap.export.__main__ import main
from pillsnap.export.checkpoint import load_classifier_checkpoint
from pillsnap.export.cls_parity import classifier_parity
from pillsnap.export.metadata import read_metadata
from pillsnap.export.report import write_report
from pillsnap.infer.bundle import open_session

CLS_KEYS = {METADATA_KEY, "class_hash", "arch", "model_version", "weights", "epoch"}


def test_export_folder_holds_everything_a_server_needs(exported: Path,
                                                       trained: dict[str, Path]) -> None:
    record = json.loads((exported / "export.json").read_text(encoding="utf-8"))
    assert record["pipelines"] == ["single", "combo"]
    for name in ("recipe.json", "gallery.npz", "drugs.json", "classifier/model.onnx",
                 "classifier/parity_report.json", "detector/model.onnx",
                 "detector/parity_report.json"):
        assert (exported / name).is_file(), name
    assert not (exported / "detector" / ".work").exists()

    cls = onnx.load(str(exported / "classifier" / "model.onnx"))
    assert cls.opset_import[0].version == 17
    assert [i.name for i in cls.graph.input] == ["images"]
    # the pooled features leave the graph beside the logits: the servers score them against
    # the gallery of class statistics, which enrollment extends without a new graph
    assert [o.name for o in cls.graph.output] == ["logits", "features"]
    assert cls.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = read_metadata(exported / "classifier" / "model.onnx")
    assert meta.keys() >= CLS_KEYS and meta["weights"] == "ema"
    # the serving recipe: one text, in the model and beside it
    text = (exported / "recipe.json").read_text(encoding="utf-8")
    assert meta[METADATA_KEY] == text
    recipe = Recipe.from_json(text)
    ck = load_classifier_checkpoint(trained["ckpt"])
    assert recipe.k_codes == ck.k_codes and recipe.crop.mean == ops.IMAGENET_MEAN
    assert recipe.crop.size == 32 and recipe.crop.short_side == 40
    assert recipe.crop.margin == 0.15 and recipe.crop.region == "pill"
    assert recipe.temperature == ck.temperature
    rule = recipe.open_set
    assert rule is not None and rule.score == "mahalanobis" and rule.tar == 0.95
    assert rule.threshold == rule.thresholds["mahalanobis"]
    assert recipe.detector is not None and recipe.detector.size == 64
    gallery = Gallery.load(exported / "gallery.npz")
    assert gallery.k_codes == recipe.k_codes and not gallery.enrolled
    assert gallery.dim == cls.graph.output[1].type.tensor_type.shape.dim[1].dim_value
    drugs = json.loads((exported / "drugs.json").read_text(encoding="utf-8"))
    assert set(drugs) == set(recipe.k_codes)

    det = onnx.load(str(exported / "detector" / "model.onnx"))
    assert [i.name for i in det.graph.input] == ["images"]
    assert [o.name for o in det.graph.output] == ["output0"]
    dims = [d.dim_param for d in det.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and dims[2] and dims[3]  # batch, height, width dynamic
    det_meta = read_metadata(exported / "detector" / "model.onnx")
    assert {"image_size", "model_version"} <= det_meta.keys()
    sess, _ = open_session(exported / "detector" / "model.onnx")
    out = sess.run(["output0"], {"images": np.zeros((2, 3, 96, 96), np.float32)})[0]
    assert out.shape[:2] == (2, 5)  # one class: cx, cy, w, h, score; another batch and size

    cls_report = json.loads((exported / "classifier" / "parity_report.json").read_text())
    assert cls_report["passed"] and cls_report["mse"] <= 1e-6
    assert cls_report["checks"]["features"] and cls_report["features_rel_diff"] <= 1e-4
    assert cls_report["top1_agreement"] == 1.0 and cls_report["samples"] == 16
    det_report = json.loads((exported / "detector" / "parity_report.json").read_text())
    assert det_report["passed"] and det_report["map50_delta"] <= 0.01
    assert det_report["matched_iou_min"] >= 0.95 and det_report["matched_boxes"] > 0
    assert det_report["detections_pytorch"] > 0  # scores above ultralytics' val threshold


def test_a_parity_failure_is_reported_and_raised(exported: Path, trained: dict[str, Path],
                                                 tmp_path: Path) -> None:
    """Shift one class's bias in the ONNX file: the check must notice and say where."""
    model = onnx.load(str(exported / "classifier" / "model.onnx"))
    bias = next(t for t in model.graph.initializer
                if numpy_helper.to_array(t).shape == (4,) and "bias" in t.name)
    values = numpy_helper.to_array(bias).copy()
    values[0] += 5.0
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    broken = tmp_path / "model.onnx"
    onnx.save(model, str(broken))
    ck = load_classifier_checkpoint(trained["ckpt"])
    report = classifier_parity(ck, broken, trained["packs"] / "val.pack", samples=8,
                               max_mse=1e-6)
    with pytest.raises(ParityError, match="classifier parity failed \\(mse"):
        write_report(tmp_path, report)
    saved = json.loads((tmp_path / "parity_report.json").read_text())
    assert not saved["passed"] and saved["mse"] > 1.0


def test_cli_exits_2_with_a_clear_message(trained: dict[str, Path], tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture,
                                          export_cfg: Callable[..., PillsnapConfig]) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    cases = [(tmp_path / "missing.pt", "checkpoint not found"),
             (garbage, "cannot read checkpoint"),
             (trained["det_ckpt"], "goes to --det-ckpt")]
    for ckpt, message in cases:
        caplog.clear()
        assert main(["--ckpt", str(ckpt), "--out", str(tmp_path / "out")]) == 2
        assert message in caplog.text, caplog.text
    caplog.clear()
    assert main(["--ckpt", str(trained["ckpt"]), "--out", str(tmp_path / "out"),
                 "--val-pack", str(tmp_path / "none.pack")]) == 2
    assert "no validation pack" in caplog.text
    assert not (tmp_path / "out" / "export.json").exists()  # unfinished: no export.json


def test_cli_exports_the_classifier_alone(trained: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "single"
    assert main(["--ckpt", str(trained["ckpt"]), "--out", str(out),
                 "export.parity.samples=8"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["pipelines"] == ["single"] and record["detector"] is None
    assert record["classifier"]["parity"]["samples"] == 8
    assert (out / "export.json").is_file() and not (out / "detector").exists()
