"""Export the classifier to ONNX: input ``images``, outputs ``logits`` and ``features`` (the
pooled features the open-set score and enrolled drugs are judged by), dynamic batch.

    path = export_classifier(load_classifier_checkpoint(Path("runs/exp01/best.pt")),
                             Path("artifacts/export/classifier/model.onnx"), opset=17)

Input: float32 NCHW, already normalised with the recipe's mean/std. Why not uint8 with the
normalisation inside the graph: the ONNX model stays exactly the network PyTorch evaluated
(parity compares the same tensor on both sides), TensorRT FP16 engines get no
integer-to-float ops at their input, and the one place that normalises is
``pillsnap.contract.ops.normalise``, which the embedded server and Triton's python models
share. The cost is 4x the bytes of a uint8 crop between preprocess and classifier, which
stays inside one process (or Triton's shared memory).

Why the features leave the graph rather than a distance computed in it: the class means
they are compared with change when a pharmacy enrolls a drug (``pillsnap.enroll``), and a
graph would have to be exported again for each; the comparison (``pillsnap.contract.
gallery``) is two matrix products per crop in numpy: 2.7 ms for one crop against 5,000
classes of 1,280 features on 2 CPU cores, in float64 (``benchmarks/gallery_distances.py``).
The serving recipe is not written here: export writes it once, after the threshold is set
on served crops (``pillsnap.export.run``).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import torch

from pillsnap.contract.ops import FEATURES_OUTPUT
from pillsnap.export.checkpoint import ClassifierCheckpoint
from pillsnap.logs import log_decision
from pillsnap.train.openset import FeatureClassifier

logger = logging.getLogger(__name__)

INPUT, OUTPUT = "images", "logits"
OUTPUTS = (OUTPUT, FEATURES_OUTPUT)


def model_version(ck: ClassifierCheckpoint, onnx_bytes: bytes) -> str:
    """``arch-e<epoch>-<digest>``: changes whenever the exported weights change."""
    digest = hashlib.sha256(onnx_bytes).hexdigest()[:10]
    return f"{ck.arch}-e{ck.epoch}-{digest}"


def model_metadata(ck: ClassifierCheckpoint, version: str) -> dict[str, object]:
    """What the ONNX file says about itself (the serving settings are the recipe's)."""
    return {"task": "classify", "arch": ck.arch, "model_version": version,
            "weights": ck.weights, "epoch": ck.epoch, "num_classes": len(ck.k_codes),
            "class_hash": ck.class_hash, "input": "images: float32 NCHW RGB, (x/255 - mean)/std",
            "outputs": "logits (batch, classes), features (batch, d)"}


def check_open_set(ck: ClassifierCheckpoint) -> None:
    """One line when the checkpoint cannot serve the open-set score the run asked for."""
    rule = ck.recipe.open_set
    if rule is None:
        log_decision(logger, "open_set", None, f"{ck.path} has no open-set thresholds (trained "
                     "before they existed): answers will not flag unknown drugs; train again "
                     "or continue the run for one more epoch", fallback=True)
    elif ck.gallery is None:
        log_decision(logger, "open_set.score", rule.score, f"{ck.path} has no class statistics "
                     "(a last.pt, or open_set.fit_samples=0): unknown drugs are told by the "
                     "logits alone and no drug can be enrolled; export best.pt of a finished "
                     "run for the feature score", fallback=True)


def export_classifier(ck: ClassifierCheckpoint, out: Path, *, opset: int,
                      dynamic_batch: bool = True) -> str:
    """Write ``out`` (ONNX, ``opset``); returns the model version."""
    out.parent.mkdir(parents=True, exist_ok=True)
    size = ck.image_size
    example = torch.randn(2, 3, size, size)
    network = FeatureClassifier(ck.model).eval()
    axes = ({name: {0: "batch"} for name in (INPUT, *OUTPUTS)} if dynamic_batch else None)
    with warnings.catch_warnings():
        # dynamo=False: the TorchScript exporter needs no onnxscript package and handles
        # timm models; torch marks it deprecated, which is not news to the user
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(network, (example,), str(out), input_names=[INPUT],
                          output_names=list(OUTPUTS), opset_version=opset, dynamic_axes=axes,
                          do_constant_folding=True, dynamo=False)
    version = model_version(ck, out.read_bytes())
    logger.info("classifier exported: %s (%s, %d classes, %d px, opset %d, version %s)",
                out, ck.arch, len(ck.k_codes), size, opset, version)
    return version
