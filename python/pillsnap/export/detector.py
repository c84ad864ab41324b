"""Export the detector (an ultralytics ``det/best.pt``) to ONNX through ultralytics' exporter.

    ck = load_detector_checkpoint(Path("runs/exp01/det/best.pt"), home=out / ".ultralytics")
    export_detector(ck, Path("artifacts/export/detector/model.onnx"), opset=17)

Input ``images`` float32 NCHW RGB in [0, 1] (letterboxed, ``pillsnap.contract.ops.letterbox``),
batch, height and width dynamic; output ``output0`` (batch, 4 + classes, anchors): box
centre and size in input pixels, then the class scores (1 class: "pill"). NMS runs outside
the graph (``ops.decode_yolo``), in the same code for every backend.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pillsnap.errors import ModelError
from pillsnap.export.metadata import write_metadata

logger = logging.getLogger(__name__)

INPUT, OUTPUT = "images", "output0"
FORMAT = "1"


@dataclass
class DetectorCheckpoint:
    path: Path
    yolo: Any  # ultralytics.YOLO
    image_size: int
    conf: float
    iou: float
    max_det: int
    data_yaml: str | None  # the dataset the detector trained on (for parity)

    @property
    def network(self) -> Any:
        """The PyTorch detection model in eval mode: ``network(x)[0]`` is ``output0``."""
        return self.yolo.model.float().eval()


def load_detector_checkpoint(path: Path, *, home: Path) -> DetectorCheckpoint:
    """Load with ultralytics, offline, its settings under ``home`` (nothing written to ~)."""
    if not path.is_file():
        raise ModelError(f"detector checkpoint not found: {path}")
    from pillsnap.train.ultralytics_env import prepare_ultralytics

    prepare_ultralytics(home, tensorboard=False)
    from ultralytics import YOLO

    try:
        yolo = YOLO(str(path), task="detect")
    except Exception as exc:
        raise ModelError(f"cannot read detector checkpoint {path}: {exc}") from None
    if getattr(yolo.model, "task", "detect") != "detect" or not hasattr(yolo.model, "stride"):
        raise ModelError(f"{path} is not a YOLO detection checkpoint")
    ckpt = getattr(yolo, "ckpt", None) or {}
    config = (ckpt.get("pillsnap") or {}).get("config") or {}
    det = (config.get("models") or {}).get("detector") or {}
    args = ckpt.get("train_args") or {}
    return DetectorCheckpoint(
        path=path, yolo=yolo, image_size=int(det.get("image_size") or args.get("imgsz") or 640),
        conf=float(det.get("conf_threshold", 0.25)), iou=float(det.get("iou_threshold", 0.45)),
        max_det=int(det.get("max_detections", 32)), data_yaml=args.get("data"))


def detector_version(ck: DetectorCheckpoint) -> str:
    """``<run>-det-<digest>``: changes whenever the checkpoint does."""
    return f"{Path(ck.path).parent.parent.name}-det-{_digest(ck.path)}"


def detector_metadata(ck: DetectorCheckpoint) -> dict[str, object]:
    """What the ONNX file says about itself (how its boxes are kept is the serving recipe's,
    ``pillsnap.contract.recipe.Detector``)."""
    return {
        "pillsnap_format": FORMAT, "task": "detect", "classes": ["pill"],
        "image_size": ck.image_size, "letterbox_fill": 114,
        "input": "images: float32 NCHW RGB in [0, 1], letterboxed square",
        "output": "output0: (batch, 4 + classes, anchors), cx cy w h in input pixels, scores",
        "model_version": detector_version(ck),
    }


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def export_detector(ck: DetectorCheckpoint, out: Path, *, opset: int) -> Path:
    """ultralytics' ONNX export (dynamic, no NMS, no simplifier: onnxslim is optional)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / ".work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        # the exporter writes next to the checkpoint it loaded: give it a private copy
        local = work / "model.pt"
        shutil.copyfile(ck.path, local)
        from ultralytics import YOLO

        written = YOLO(str(local), task="detect").export(
            format="onnx", opset=opset, dynamic=True, simplify=False, nms=False,
            imgsz=ck.image_size, batch=1, device="cpu", verbose=False)
        shutil.move(str(written), out)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"ultralytics could not export {ck.path}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_metadata(out, detector_metadata(ck))
    logger.info("detector exported: %s (%d px, opset %d)", out, ck.image_size, opset)
    return out
