"""INT8 classifier: ONNX Runtime static quantization, calibrated on training crops.

    python -m pillsnap.export --ckpt runs/exp01/best.pt --quantize int8

After the FP32 export, ``classifier/model.int8.onnx`` is written beside ``model.onnx``:
QDQ format, weights int8 per output channel, activations uint8 with ranges measured
(MinMax) on ``export.int8_calibration_images`` eval crops of the *training* pack, so the
validation crops that judge it stay unseen. ``int8_report.json`` gives what it costs and
buys on this machine: top-1 of both models on the val crops, their top-1 agreement, the
largest calibrated-probability change, and CPU latency (batch 1) and throughput (batch 16)
of both. Serving keeps the FP32 model unless told otherwise; the report says whether the
INT8 one is worth switching to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from pillsnap.contract import ops
from pillsnap.errors import DataError
from pillsnap.export.cls_parity import val_crops

logger = logging.getLogger(__name__)

INT8_FILE = "model.int8.onnx"
CALIBRATION_BATCH = 16


class _Crops:
    """onnxruntime's CalibrationDataReader protocol over normalised crop batches."""

    def __init__(self, crops: np.ndarray) -> None:
        self._batches: Iterator[np.ndarray] = iter(
            [ops.normalise(crops[i:i + CALIBRATION_BATCH])
             for i in range(0, len(crops), CALIBRATION_BATCH)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"images": batch}


def quantize_classifier(fp32: Path, *, calibration_pack: Path, val_pack: Path,
                        image_size: int, calibration_images: int, eval_samples: int,
                        temperature: float) -> dict[str, Any]:
    """Write ``INT8_FILE`` next to ``fp32`` and return the comparison report."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    for pack, role in ((calibration_pack, "calibration"), (val_pack, "evaluation")):
        if not pack.is_file():
            raise DataError(f"INT8 {role} needs {pack}: pack that split first "
                            "(python -m pillsnap.data pack)")
    out = fp32.with_name(INT8_FILE)
    prepared = fp32.with_name("model.int8-prep.onnx")
    # A random draw: the pack is stored class by class, and the first N crops would
    # calibrate the activation ranges on a few classes only.
    calibration, _ = val_crops(calibration_pack, image_size, calibration_images,
                               shuffle=True)
    started = time.perf_counter()
    try:
        # Shape inference and graph clean-up first, as onnxruntime's quantizer recommends.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), _Crops(calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        prepared.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    crops, labels = val_crops(val_pack, image_size, eval_samples)
    report = compare(fp32, out, ops.normalise(crops), labels, temperature)
    report.update(calibration_images=len(calibration), calibration_pack=str(calibration_pack),
                  evaluation_pack=str(val_pack), quantize_seconds=round(seconds, 2),
                  method="onnxruntime quantize_static, QDQ, per-channel int8 weights, "
                         "uint8 activations, MinMax calibration")
    logger.info("int8 classifier: top-1 %.4f -> %.4f (agreement %.4f), batch-1 latency "
                "%.2f -> %.2f ms, batch-16 %.0f -> %.0f img/s -> %s",
                report["fp32"]["top1"], report["int8"]["top1"], report["top1_agreement"],
                report["fp32"]["latency_ms_p50"], report["int8"]["latency_ms_p50"],
                report["fp32"]["img_s_batch16"], report["int8"]["img_s_batch16"], out)
    return report


def compare(fp32: Path, int8: Path, x: np.ndarray, labels: np.ndarray,
            temperature: float) -> dict[str, Any]:
    """Accuracy and speed of both models on the same normalised crops."""
    results, probs = {}, {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        logits = np.concatenate([sess.run(["logits"], {"images": x[i:i + 16]})[0]
                                 for i in range(0, len(x), 16)])
        probs[name] = ops.softmax(logits, temperature)
        results[name] = {"file": path.name, "top1": float((logits.argmax(1) == labels).mean()),
                         "bytes": path.stat().st_size, **_speed(sess, x)}
    agreement = float((probs["fp32"].argmax(1) == probs["int8"].argmax(1)).mean())
    return {**results, "samples": len(x), "top1_agreement": agreement,
            "top1_change": results["int8"]["top1"] - results["fp32"]["top1"],
            "prob_max_abs_diff": float(np.abs(probs["fp32"] - probs["int8"]).max()),
            "speedup_batch1": results["fp32"]["latency_ms_p50"]
            / results["int8"]["latency_ms_p50"],
            "speedup_batch16": results["int8"]["img_s_batch16"]
            / results["fp32"]["img_s_batch16"]}


def _speed(sess: ort.InferenceSession, x: np.ndarray, runs: int = 30) -> dict[str, float]:
    one = x[:1]
    batch = np.concatenate([x] * (16 // len(x) + 1))[:16]
    for _ in range(3):
        sess.run(["logits"], {"images": one})
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        sess.run(["logits"], {"images": one})
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    repeats = max(3, runs // 5)
    for _ in range(repeats):
        sess.run(["logits"], {"images": batch})
    rate = 16 * repeats / (time.perf_counter() - started)
    return {"latency_ms_p50": float(np.percentile(times, 50)), "img_s_batch16": rate}
