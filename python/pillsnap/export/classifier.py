"""Export the classifier to ONNX: input ``images``, outputs ``logits`` and (with open-set
statistics in the checkpoint) ``known_score``, dynamic batch.

    path = export_classifier(load_classifier_checkpoint(Path("runs/exp01/best.pt")),
                             Path("artifacts/export/classifier/model.onnx"), opset=17)

Input: float32 NCHW, already normalised with the ImageNet mean/std (stored as metadata).
Why not uint8 with the normalisation inside the graph: the ONNX model stays exactly the
network PyTorch evaluated (parity compares the same tensor on both sides), TensorRT FP16
engines get no integer-to-float ops at their input, and the one place that normalises is
``pillsnap.contract.ops.normalise``, which the embedded server and Triton's python models
share. The cost is 4x the bytes of a uint8 crop between preprocess and classifier, which
stays inside one process (or Triton's shared memory).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import torch

from pillsnap.contract.ops import IMAGENET_MEAN, IMAGENET_STD, KNOWN_OUTPUT
from pillsnap.export.checkpoint import ClassifierCheckpoint
from pillsnap.export.metadata import write_metadata
from pillsnap.logs import log_decision
from pillsnap.train.openset import GaussianScore, OpenSetClassifier

logger = logging.getLogger(__name__)

INPUT, OUTPUT = "images", "logits"
FORMAT = "1"  # bump when the meaning of a metadata key changes


def model_version(ck: ClassifierCheckpoint, onnx_bytes: bytes) -> str:
    """``arch-e<epoch>-<digest>``: changes whenever the exported weights change."""
    digest = hashlib.sha256(onnx_bytes).hexdigest()[:10]
    return f"{ck.arch}-e{ck.epoch}-{digest}"


def classifier_metadata(ck: ClassifierCheckpoint, version: str) -> dict[str, object]:
    """Everything serving needs to use the model correctly, without the checkpoint."""
    return {
        "pillsnap_format": FORMAT, "task": "classify", "arch": ck.arch,
        "model_version": version, "weights": ck.weights, "epoch": ck.epoch,
        "k_codes": list(ck.k_codes), "class_hash": ck.class_hash,
        "num_classes": len(ck.k_codes), "temperature": ck.temperature,
        "open_set": open_set_metadata(ck),
        "image_size": ck.image_size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
        "input": "images: float32 NCHW RGB, (x/255 - mean)/std", "output": "logits",
        # how training crops were made: serving crops must be made the same way
        "pack_short_side": ck.setting("pack.short_side", 480),
        "pack_region": ck.setting("pack.region", "pill"),
        "crop_margin": ck.setting("pack.pill_margin", 0.15),
    }


FALLBACK_SCORE = "max_logit"  # served when the chosen score has no threshold (no statistics)


def open_set_metadata(ck: ClassifierCheckpoint) -> dict[str, object] | None:
    """The checkpoint's open-set choice: the score serving uses, its threshold, and every
    score's threshold (for ``pillsnap.eval``'s comparison). None for older checkpoints."""
    if not ck.open_set or not ck.open_set.get("thresholds"):
        return None
    thresholds = {k: float(v) for k, v in ck.open_set["thresholds"].items()}
    score = str(ck.open_set.get("score", FALLBACK_SCORE))
    if score not in thresholds:  # a last.pt, or statistics switched off: no mahalanobis
        score = FALLBACK_SCORE
    return {"score": score, "threshold": thresholds[score], "tar": ck.open_set.get("tar"),
            "thresholds": thresholds}


def graph_of(ck: ClassifierCheckpoint) -> tuple[torch.nn.Module, list[str]]:
    """The network to export and its outputs: with the checkpoint's Gaussian statistics,
    ``known_score`` beside ``logits`` (``pillsnap.train.openset``)."""
    gaussian = (ck.open_set or {}).get("gaussian")
    if not gaussian:
        return ck.model.eval(), [OUTPUT]
    score = GaussianScore(gaussian["means"], gaussian["precision"])
    return OpenSetClassifier(ck.model, score).eval(), [OUTPUT, KNOWN_OUTPUT]


def export_classifier(ck: ClassifierCheckpoint, out: Path, *, opset: int,
                      dynamic_batch: bool = True) -> Path:
    """Write ``out`` (ONNX, ``opset``) with metadata; returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    size = ck.image_size
    example = torch.randn(2, 3, size, size)
    network, outputs = graph_of(ck)
    axes = ({name: {0: "batch"} for name in (INPUT, *outputs)} if dynamic_batch else None)
    with warnings.catch_warnings():
        # dynamo=False: the TorchScript exporter needs no onnxscript package and handles
        # timm models; torch marks it deprecated, which is not news to the user
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(network, (example,), str(out), input_names=[INPUT],
                          output_names=outputs, opset_version=opset, dynamic_axes=axes,
                          do_constant_folding=True, dynamo=False)
    version = model_version(ck, out.read_bytes())
    metadata = classifier_metadata(ck, version)
    chosen = (ck.open_set or {}).get("score")
    if metadata["open_set"] is None:
        log_decision(logger, "open_set", None, f"{ck.path} has no open-set thresholds (trained "
                     "before they existed): answers will not flag unknown drugs; train again "
                     "or continue the run for one more epoch", fallback=True)
    elif metadata["open_set"]["score"] != chosen:
        log_decision(logger, "open_set.score", metadata["open_set"]["score"], f"{ck.path} has "
                     f"no {chosen} statistics (a last.pt, or open_set.fit_samples=0): export "
                     "best.pt of a finished run for the stronger score", fallback=True)
    write_metadata(out, metadata)
    logger.info("classifier exported: %s (%s, %d classes, %d px, opset %d, version %s)",
                out, ck.arch, len(ck.k_codes), size, opset, version)
    return out
