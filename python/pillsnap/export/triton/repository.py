"""Write the Triton model repository from an export folder.

    python -m pillsnap.export --triton --from artifacts/export --out triton_models
    write_repository(Path("artifacts/export"), Path("triton_models"), cfg.triton, cfg.serve)

Everything a python model needs is copied into its version folder (``model.py``, copies of
``pillsnap.contract.ops`` and ``.photo`` as ``pillsnap_ops.py`` and ``pillsnap_photo.py``,
``pillsnap.json``, tables): the NGC container has no PillSnap installed (there the photo
work runs on Pillow; where PillSnap is installed, on its Rust engine). The settings come
from the models' ONNX metadata through ``OnnxPipeline``, so Triton and the in-process
pipeline cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from pillsnap.config.schema import ServeConfig, TritonConfig
from pillsnap.contract import ops, photo
from pillsnap.errors import ModelError
from pillsnap.export.triton import configs
from pillsnap.export.triton.configs import OnnxSettings, Step
from pillsnap.export.triton.pbtxt import Tensor
from pillsnap.infer.pipeline import OnnxPipeline

logger = logging.getLogger(__name__)

MARKER = "pillsnap_repository.json"  # says the folder is ours to rewrite
TEMPLATES = Path(__file__).resolve().parent / "models"
OPS_COPY = "pillsnap_ops.py"
PHOTO_COPY = "pillsnap_photo.py"

PHOTO = Tensor("PHOTO", "TYPE_UINT8", (-1, -1, 3))
PLACEMENT = Tensor("PLACEMENT", "TYPE_FP64", (6,))
DETECTIONS = Tensor("DETECTIONS", "TYPE_FP32", (1, -1, -1))
BOXES = Tensor("BOXES", "TYPE_FP32", (-1, 4))
SCORES = Tensor("SCORES", "TYPE_FP32", (-1,))
DECISION = Tensor("DECISION", "TYPE_STRING", (1,))
KNOWN = Tensor("KNOWN", "TYPE_FP32", (-1, 1))  # the classifier's known_score per crop


def write_repository(export: Path, out: Path, triton: TritonConfig,
                     serve: ServeConfig) -> dict[str, Any]:
    """(Re)write ``out``; returns what ``pillsnap_repository.json`` records."""
    pipe = OnnxPipeline.open(export)
    _clear(out)
    version = triton.model_version
    classes = len(pipe.bundle.k_codes)
    det_size = (int(pipe.bundle.detector_info["image_size"])
                if pipe.bundle.detector_info is not None else None)
    _classifier(pipe, out, triton, classes)
    _preprocess(out, version, triton, serve, det_size)
    _postprocess(pipe, out, version, triton, classes)
    ensembles = ["pill_single"]
    _crop(pipe, out, "crop_classify_single", triton, serve, pipeline="single", classes=classes)
    _ensemble(out, "pill_single", version, pipe, detect=pipe.single_detects)
    if det_size is not None:
        _detector(pipe, out, triton, det_size)
        _crop(pipe, out, "crop_classify", triton, serve, pipeline="combo", classes=classes)
        _ensemble(out, "pill_combo", version, pipe, detect=True)
        ensembles.append("pill_combo")
    record = {"format": 1, "export": str(export.resolve()), "model_version":
              pipe.bundle.model_version, "triton_model_version": version,
              "ensembles": ensembles, "single_uses_detector": pipe.single_detects}
    (out / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    logger.info("triton repository written: %s (ensembles %s, model version %s)", out,
                ", ".join(ensembles), record["model_version"])
    return record


def _clear(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ModelError(f"{out} exists and is not a repository written by PillSnap (no "
                         f"{MARKER}); choose another --out or empty it")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)


def _model_dir(out: Path, name: str, version: str) -> Path:
    folder = out / name / version
    folder.mkdir(parents=True)
    return folder


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _python_model(out: Path, name: str, version: str, template: str,
                  settings: dict[str, Any]) -> Path:
    """A python model's version folder: its source, the contract copies and its settings."""
    folder = _model_dir(out, name, version)
    shutil.copyfile(TEMPLATES / template, folder / "model.py")
    shutil.copyfile(ops.__file__, folder / OPS_COPY)  # one source, two homes
    shutil.copyfile(photo.__file__, folder / PHOTO_COPY)
    _write(folder / "pillsnap.json", json.dumps(settings, indent=2) + "\n")
    return folder


def _onnx_model(pipe: OnnxPipeline, out: Path, name: str, triton: TritonConfig, *,
                inputs: list[Tensor], outputs: list[Tensor], max_batch: int) -> None:
    folder = _model_dir(out, name, triton.model_version)
    record = json.loads((pipe.bundle.folder / "export.json").read_text(encoding="utf-8"))
    shutil.copyfile(pipe.bundle.folder / record[name]["file"], folder / "model.onnx")
    shutil.copyfile(TEMPLATES / "onnx_cpu.py", folder / "model.py")
    s = OnnxSettings(max_batch, triton.max_queue_delay_us, triton.instances, triton.warmup,
                     triton.tensorrt_fp16, triton.cpu_threads)
    _write(out / name / "config.pbtxt", configs.onnx_gpu_config(name, inputs, outputs, s))
    _write(out / name / "configs" / "cpu.pbtxt",
           configs.onnx_cpu_config(name, inputs, outputs, s))


def _classifier(pipe: OnnxPipeline, out: Path, triton: TritonConfig, classes: int) -> None:
    size = pipe.image_size
    outputs = [Tensor("logits", "TYPE_FP32", (classes,))]
    if ops.KNOWN_OUTPUT in pipe.outputs:
        outputs.append(Tensor(ops.KNOWN_OUTPUT, "TYPE_FP32", (1,)))
    _onnx_model(pipe, out, "classifier", triton,
                inputs=[Tensor("images", "TYPE_FP32", (3, size, size))],
                outputs=outputs, max_batch=triton.classifier_max_batch)


def _detector(pipe: OnnxPipeline, out: Path, triton: TritonConfig, size: int) -> None:
    # the letterbox is always size x size; anchors and classes follow from the model
    _onnx_model(pipe, out, "detector", triton,
                inputs=[Tensor("images", "TYPE_FP32", (3, size, size))],
                outputs=[Tensor("output0", "TYPE_FP32", (-1, -1))],
                max_batch=triton.detector_max_batch)


def _preprocess(out: Path, version: str, triton: TritonConfig, serve: ServeConfig,
                det_size: int | None) -> None:
    _python_model(out, "preprocess", version, "preprocess.py",
                  {"detector_size": det_size, "max_pixels": serve.max_pixels,
                   "max_bytes": serve.max_upload_bytes})
    outputs = [PHOTO]
    if det_size is not None:
        outputs += [Tensor("DET_IMAGES", "TYPE_FP32", (1, 3, det_size, det_size)), PLACEMENT]
    _write(out / "preprocess" / "config.pbtxt", configs.python_config(
        "preprocess", [configs.IMAGE], outputs, count=triton.instances))


def _crop(pipe: OnnxPipeline, out: Path, name: str, triton: TritonConfig, serve: ServeConfig,
          *, pipeline: str, classes: int) -> None:
    detect = pipeline == "combo" or pipe.single_detects
    info = pipe.bundle.detector_info
    detector = ({"conf": float(info["conf_threshold"]), "iou": float(info["iou_threshold"]),
                 "max_det": int(info["max_detections"])} if detect and info else None)
    _python_model(out, name, triton.model_version, "crop_classify.py", {
        "pipeline": pipeline, "detector": detector, "max_pixels": serve.max_pixels,
        "classifier": {"model": "classifier", "max_batch": triton.classifier_max_batch,
                       "outputs": pipe.outputs, "classes": classes,
                       "image_size": pipe.image_size,
                       "short_side": pipe.short_side, "margin": pipe.margin,
                       "mean": list(pipe.mean), "std": list(pipe.std)}})
    # IMAGE: where preprocess left PHOTO empty, the crops are decoded from the upload itself
    inputs = [configs.IMAGE, PHOTO, *([DETECTIONS, PLACEMENT] if detector else [])]
    logits = Tensor("LOGITS", "TYPE_FP32", (-1, classes))
    _write(out / name / "config.pbtxt", configs.python_config(
        name, inputs, [logits, KNOWN, BOXES, SCORES, DECISION], count=triton.instances))


def _postprocess(pipe: OnnxPipeline, out: Path, version: str, triton: TritonConfig,
                 classes: int) -> None:
    folder = _python_model(out, "postprocess", version, "postprocess.py",
                           {"temperature": pipe.temperature,
                            "open_set": None if pipe.open_set is None else
                            {"score": pipe.open_set.score,
                             "threshold": pipe.open_set.threshold}})
    _write(folder / "classes.json", json.dumps({"k_codes": list(pipe.bundle.k_codes)},
                                               ensure_ascii=False) + "\n")
    _write(folder / "drugs.json", json.dumps(pipe.bundle.drugs, ensure_ascii=False) + "\n")
    inputs = [Tensor("LOGITS", "TYPE_FP32", (-1, classes)), KNOWN, BOXES, SCORES, DECISION,
              configs.TOP_K]
    _write(out / "postprocess" / "config.pbtxt", configs.python_config(
        "postprocess", inputs, [configs.RESULT], count=triton.instances))


def _ensemble(out: Path, name: str, version: str, pipe: OnnxPipeline, *, detect: bool) -> None:
    crop = "crop_classify" if name == "pill_combo" else "crop_classify_single"
    pre_out = {"PHOTO": "photo"}
    crop_in = {"IMAGE": "IMAGE", "PHOTO": "photo"}
    steps = []
    if detect:
        pre_out |= {"DET_IMAGES": "det_images", "PLACEMENT": "placement"}
        crop_in |= {"DETECTIONS": "detections", "PLACEMENT": "placement"}
    steps.append(Step("preprocess", {"IMAGE": "IMAGE"}, pre_out))
    if detect:
        steps.append(Step("detector", {"images": "det_images"}, {"output0": "detections"}))
    parts = {"LOGITS": "logits", "KNOWN": "known", "BOXES": "boxes", "SCORES": "scores",
             "DECISION": "decision"}
    steps.append(Step(crop, crop_in, parts))
    steps.append(Step("postprocess", {**parts, "TOP_K": "TOP_K"}, {"RESULT": "RESULT"}))
    _model_dir(out, name, version)  # Triton wants a version folder, even an empty one
    _write(out / name / "config.pbtxt", configs.ensemble_config(
        name, steps, model_version=pipe.bundle.model_version))
