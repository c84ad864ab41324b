"""Classifier parity: PyTorch vs ONNX Runtime on real validation crops from the val pack.

    report = classifier_parity(ck, Path("artifacts/export/classifier/model.onnx"),
                               Path("artifacts/pack/val.pack"), samples=64, max_mse=1e-6)

The crops come from the PackLoader's eval path (resize + centre crop, as evaluation saw
them), normalised by ``pillsnap.contract.ops.normalise``; both runtimes get the same tensor.
Passes when the logit MSE is at most ``max_mse`` and every top-1 agrees; a batch of one
must give the same logits as that image inside a batch (the dynamic batch axis works); the
features output (what the open-set score and enrolled drugs are judged by) must agree to
``FEATURES_RTOL`` of its scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from pillsnap.contract import ops
from pillsnap.data.classes import ClassIndex
from pillsnap.data.loader import PackLoader
from pillsnap.errors import DataError
from pillsnap.export.checkpoint import ClassifierCheckpoint
from pillsnap.export.classifier import OUTPUTS
from pillsnap.train.inputs import check_pack
from pillsnap.train.openset import FeatureClassifier

BATCH = 16
FEATURES_RTOL = 1e-4


def val_crops(pack: Path, image_size: int, samples: int,
              shuffle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` eval crops of ``pack`` as uint8 NHWC, and their labels: the first ones,
    or (``shuffle``) a seeded random draw across the whole pack."""
    loader = PackLoader(pack, batch_size=min(BATCH, samples), image_size=image_size,
                        train=False, threads=1, shuffle=shuffle, seed=0, drop_last=False)
    images, labels = [], []
    for batch, y in loader:
        images.append(batch.permute(0, 2, 3, 1).numpy().copy())  # slots are reused
        labels.append(y.numpy().copy())
        if sum(len(b) for b in images) >= samples:
            break
    del loader
    if not images:
        raise DataError(f"the validation pack {pack} holds no records")
    return np.concatenate(images)[:samples], np.concatenate(labels)[:samples]


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def classifier_parity(ck: ClassifierCheckpoint, onnx_path: Path, pack: Path, *,
                      samples: int, max_mse: float) -> dict[str, Any]:
    """Compare logits on ``samples`` val crops; the report ``write_report`` stores."""
    if not pack.is_file():
        raise DataError(f"no validation pack at {pack} for the parity check: pack the val "
                        "split (python -m pillsnap.data pack) or pass --val-pack")
    check_pack(pack, ClassIndex(ck.k_codes))
    crops, labels = val_crops(pack, ck.image_size, samples)
    x = ops.normalise(crops, ck.recipe.crop.mean, ck.recipe.crop.std)
    with torch.no_grad():
        reference, ref_features = (t.numpy() for t in
                                   FeatureClassifier(ck.model).eval()(torch.from_numpy(x)))
    sess = session(onnx_path)
    exported, features = sess.run(list(OUTPUTS), {"images": x})
    single = sess.run(["logits"], {"images": x[:1]})[0]
    mse = float(np.mean((reference - exported) ** 2))
    agree = reference.argmax(1) == exported.argmax(1)
    p_ref = ops.softmax(reference, ck.temperature)
    p_onnx = ops.softmax(exported, ck.temperature)
    batch1 = float(np.abs(single[0] - exported[0]).max())
    checks = {"mse": mse <= max_mse, "top1_identical": bool(agree.all()),
              "batch_of_one": batch1 <= max(1e-4, 10 * np.sqrt(max_mse)),
              "finite": bool(np.isfinite(exported).all())}
    feature_diff = float(np.abs(ref_features - features).max()
                         / max(float(np.abs(ref_features).max()), 1e-6))
    checks["features"] = feature_diff <= FEATURES_RTOL
    return {
        "model": "classifier", "onnx": str(onnx_path), "checkpoint": str(ck.path),
        "weights": ck.weights, "source": str(pack), "samples": len(x),
        "image_size": ck.image_size, "mse": mse, "max_mse": max_mse,
        "max_abs_diff": float(np.abs(reference - exported).max()),
        "logit_scale": float(np.abs(reference).max()),
        "top1_agreement": float(agree.mean()),
        "prob_max_abs_diff": float(np.abs(p_ref - p_onnx).max()),
        "batch1_max_abs_diff": batch1, "features_rel_diff": feature_diff,
        "pytorch_top1_accuracy": float((reference.argmax(1) == labels).mean()),
        "onnx_top1_accuracy": float((exported.argmax(1) == labels).mean()),
        "checks": checks,
        "summary": f"MSE {mse:.3g} (max {max_mse:g}), top-1 agreement {agree.mean():.4f} on "
                   f"{len(x)} val crops",
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
    }
