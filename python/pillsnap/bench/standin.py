"""The serving pipeline on a GPU machine whose ONNX Runtime has no CUDA provider: both models
as PyTorch modules in place of the ONNX sessions, the rest of ``OnnxPipeline`` (photo
engine, box selection, crops, answer) as it serves. Its figures are labelled "PyTorch
stand-in" wherever they are printed.

    # here, where ultralytics is installed: YOLO11m, one class, fused, as TorchScript
    python -m pillsnap.bench standin --out .device/standin
    # on the GPU machine (torch and timm; no ultralytics, no onnxruntime-gpu there)
    python -m pillsnap.bench serve --standin .device/standin --device cuda

The classifier (EfficientNetV2-S, 384 px, 5,000 classes: the spec's size) is built where it
runs, from timm. The detector travels as TorchScript with fp16 weights (about 40 MB for
YOLO11m), widened to fp32 when loaded. Both keep their initial, untrained weights: latency,
not accuracy. An untrained detector's scores mean nothing, so its threshold is set on the
sample combination photo from its own scores (at least ``CANDIDATES`` boxes pass it,
``MAX_BOXES`` are kept, as in the CPU table's export), and that photo yields 4 crops as a
4-pill photo would. On a GPU the convolutions run with PyTorch's defaults (cuDNN with
TF32) in cuDNN's benchmark mode, channels_last, fp32: the batch-1 protocol of ``bench
latency``. TorchScript is deprecated in recent PyTorch (2.15 warns) but loads on the GPU
machine's 2.11; ``torch.export`` would need the same version at both ends.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from pillsnap.contract.photo import open_photo
from pillsnap.contract.recipe import Crop, Detector, Recipe
from pillsnap.data.classes import ClassIndex
from pillsnap.infer.bundle import Bundle
from pillsnap.infer.pipeline import OnnxPipeline

logger = logging.getLogger(__name__)

DETECTOR_FILE = "detector.ts"
INFO_FILE = "detector.json"
LABEL = "PyTorch stand-in"
CANDIDATES = 16  # boxes (at least) over the calibrated threshold on the combination photo
MAX_BOXES = 4
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _FirstOutput(torch.nn.Module):
    """ultralytics' inference output ``(decoded, raw)`` cut to ``decoded``: (1, 5, anchors)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y[0] if isinstance(y, (tuple, list)) else y


def write_detector(out: Path, *, arch: str = "yolo11m", size: int = 640) -> Path:
    """``arch`` (one class, fused, initial weights) traced at ``size`` into ``out``."""
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(f"{arch}.yaml", nc=1, verbose=False).fuse(verbose=False).eval()
    model.requires_grad_(False)
    example = torch.zeros(1, 3, size, size)
    # no_grad, not inference_mode: the head caches its anchors, and the trace reuses them
    with torch.no_grad():
        expected = model(example)[0].shape
        traced = torch.jit.trace(_FirstOutput(model), example, strict=False, check_trace=False)
    if tuple(traced(example).shape) != tuple(expected) or expected[1] != 5:
        raise RuntimeError(f"the traced {arch} answers {tuple(traced(example).shape)}, "
                           f"not {tuple(expected)} with 4 box rows and one class")
    out.mkdir(parents=True, exist_ok=True)
    path = out / DETECTOR_FILE
    torch.jit.save(traced.half(), str(path))  # fp16 weights: half the bytes to carry
    info = {"arch": arch, "image_size": size, "anchors": int(expected[2])}
    (out / INFO_FILE).write_text(json.dumps(info) + "\n", encoding="utf-8")
    logger.info("stand-in detector %s (%d px, output %s): %s, %.1f MB", arch, size,
                tuple(expected), path, path.stat().st_size / 1e6)
    return path


class TorchRunner:
    """A PyTorch module where the pipeline expects an ONNX Runtime session
    (``pillsnap.infer.binding.ModelRunner``): numpy in, numpy out, the copies included."""

    def __init__(self, module: torch.nn.Module, device: torch.device, outputs: list[str]) -> None:
        self.device = device
        self.module = module.to(device).eval()
        if device.type == "cuda":
            self.module = self.module.to(memory_format=torch.channels_last)
        self.where = device.type
        self.outputs = outputs
        self.bound = False
        self.busy_s = 0.0

    @torch.inference_mode()
    def run(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        started = time.perf_counter()
        try:
            x = torch.from_numpy(np.ascontiguousarray(feeds["images"])).to(self.device)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.module(x)
            return [y.float().cpu().numpy()]  # .cpu() waits for the GPU: the time is real
        finally:
            self.busy_s += time.perf_counter() - started

    def settle(self, model: str, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> None:
        """Nothing to settle: the input is copied to the device in ``run``."""


def open_pipeline(folder: Path, device: str, *, classifier: str = "tf_efficientnetv2_s",
                  classes: int = 5000, image_size: int = 384,
                  calibrate: bytes | None = None) -> OnnxPipeline:
    """The stand-in pipeline: ``classifier`` from timm and the detector written by
    ``write_detector`` into ``folder``, on ``device`` (``cuda`` or ``cpu``); ``calibrate``:
    the combination photo whose detector scores set the threshold."""
    import timm

    where = torch.device("cuda" if device in ("cuda", "tensorrt", "auto")
                         and torch.cuda.is_available() else "cpu")
    if where.type == "cuda":
        torch.backends.cudnn.benchmark = True
    det_path = folder / DETECTOR_FILE
    if not det_path.is_file():
        raise SystemExit(f"no stand-in detector at {det_path}: python -m pillsnap.bench "
                         f"standin --out {folder}")
    detector = torch.jit.load(str(det_path), map_location="cpu").float()
    det_size = int(json.loads((folder / INFO_FILE).read_text("utf-8"))["image_size"])
    classes_index = ClassIndex(tuple(f"K-{i:06d}" for i in range(1, classes + 1)))
    recipe = Recipe(arch=classifier, k_codes=classes_index.k_codes,
                    class_hash=classes_index.hash,
                    crop=Crop(size=image_size, short_side=480, region="pill", margin=0.15,
                              mean=MEAN, std=STD),
                    detector=Detector(size=det_size, conf=0.0, iou=0.7, max_det=MAX_BOXES))
    # no ONNX sessions, no open-set rule: the runners below stand in for the sessions
    bundle = Bundle(folder, None, None, recipe, None, {},  # type: ignore[arg-type]
                    f"{LABEL}:{classifier}+{LABEL}:detector")
    model = timm.create_model(classifier, pretrained=False, num_classes=classes)
    pipe = OnnxPipeline(bundle, runners=(TorchRunner(model, where, ["logits"]),
                                         TorchRunner(detector, where, ["output0"])))
    if calibrate is not None:
        pipe.recipe = recipe.replace(detector=Detector(
            size=det_size, conf=threshold(pipe, calibrate), iou=0.7, max_det=MAX_BOXES))
    pipe.warm_up()
    return pipe


def threshold(pipe: OnnxPipeline, photo: bytes) -> float:
    """A score just under the ``CANDIDATES``-th best of ``photo``'s boxes: at least that
    many pass it (an untrained head scores whole grids alike, so ties may add more)."""
    assert pipe.detector is not None and pipe.recipe.detector is not None
    tensor, _ = open_photo(photo).letterbox(pipe.recipe.detector.size)
    scores = pipe.detector.run(["output0"], {"images": tensor[None]})[0][0][4]
    cut = float(np.nextafter(np.sort(scores)[-CANDIDATES], np.float32(-np.inf)))
    logger.info("stand-in detector threshold %.6g: %d boxes of the combination photo over it",
                cut, int((scores > cut).sum()))
    return cut
