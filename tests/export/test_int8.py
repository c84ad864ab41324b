"""INT8 export: a quantized classifier next to the FP32 one, with an honest comparison.

    PYTHONPATH=python python -m pytest tests/export/test_int8.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pillsnap.contract import ops
from pillsnap.errors import DataError
from pillsnap.export.__main__ import main
from pillsnap.export.cls_parity import val_crops
from pillsnap.export.int8 import quantize_classifier


def test_quantize_int8_writes_a_quantized_model_and_its_report(
        trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "int8"
    assert main(["--ckpt", str(trained["ckpt"]), "--out", str(out), "--quantize", "int8",
                 "export.parity.samples=8", "export.int8_calibration_images=16"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["classifier"]["int8"]["file"] == "classifier/model.int8.onnx"

    model = onnx.load(str(out / "classifier" / "model.int8.onnx"))
    ops_used = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops_used  # really quantized (QDQ)
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["logits", "features"]  # a drop-in

    report = json.loads((out / "classifier" / "int8_report.json").read_text())
    assert report["calibration_images"] == 16
    assert report["calibration_pack"].endswith("train.pack")  # val stays unseen
    assert report["int8"]["bytes"] < report["fp32"]["bytes"]

    # the reported accuracy is what the INT8 model really scores on those val crops
    crops, labels = val_crops(trained["packs"] / "val.pack", 32, report["samples"])
    sess = ort.InferenceSession(str(out / "classifier" / "model.int8.onnx"),
                                providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"images": ops.normalise(crops)})[0]
    assert np.isfinite(logits).all()
    assert report["int8"]["top1"] == pytest.approx(float((logits.argmax(1) == labels).mean()))
    assert 0.0 <= report["top1_agreement"] <= 1.0
    assert report["speedup_batch1"] > 0 and report["speedup_batch16"] > 0


def test_quantize_needs_the_training_pack(trained: dict[str, Path], exported: Path,
                                          tmp_path: Path) -> None:
    with pytest.raises(DataError, match="calibration needs"):
        quantize_classifier(exported / "classifier" / "model.onnx",
                            calibration_pack=tmp_path / "missing.pack",
                            val_pack=trained["packs"] / "val.pack", image_size=32,
                            calibration_images=8, eval_samples=8, temperature=1.0)
    assert not (exported / "classifier" / "model.int8.onnx").exists()
