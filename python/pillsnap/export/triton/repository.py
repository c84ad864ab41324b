"""Write the Triton model repository from an export folder.

    python -m pillsnap.export --triton --from artifacts/export --out triton_models
    write_repository(Path("artifacts/export"), Path("triton_models"), cfg.triton, cfg.serve)

Everything a python model needs is copied into its version folder (``model.py``, copies of
the contract modules ``ops``, ``photo``, ``recipe``, ``gallery`` and ``decide`` as
``pillsnap_<name>.py``, the export's ``recipe.json`` verbatim, its own ``pillsnap.json``,
and for ``postprocess`` the drug table and ``gallery.npz``): the NGC container has no
PillSnap installed (there the photo work runs on Pillow; where PillSnap is installed, on its
Rust engine). The serving numbers are the export's recipe, the same file the in-process
pipeline reads, so Triton and it cannot drift apart. ``postprocess`` reads ``gallery.npz``
again when ``python -m pillsnap.enroll --triton-repo`` replaces it: no restart, no reload.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from pillsnap.config.schema import ServeConfig, TritonConfig
from pillsnap.contract import decide, gallery, ops, photo, recipe
from pillsnap.contract.gallery import GALLERY_FILE
from pillsnap.contract.recipe import RECIPE_FILE
from pillsnap.errors import ModelError
from pillsnap.export.triton import configs
from pillsnap.export.triton.configs import OnnxSettings, Step
from pillsnap.export.triton.pbtxt import Tensor
from pillsnap.infer.bundle import export_record
from pillsnap.infer.pipeline import OnnxPipeline

logger = logging.getLogger(__name__)

MARKER = "pillsnap_repository.json"  # says the folder is ours to rewrite
TEMPLATES = Path(__file__).resolve().parent / "models"
# one source, two homes: the contract modules every python model imports, by these names
CONTRACT_COPIES = {f"pillsnap_{m.__name__.rsplit('.', 1)[1]}.py": Path(str(m.__file__))
                   for m in (ops, photo, recipe, gallery, decide)}

PHOTO = Tensor("PHOTO", "TYPE_UINT8", (-1, -1, 3))
PLACEMENT = Tensor("PLACEMENT", "TYPE_FP64", (6,))
DETECTIONS = Tensor("DETECTIONS", "TYPE_FP32", (1, -1, -1))
BOXES = Tensor("BOXES", "TYPE_FP32", (-1, 4))
SCORES = Tensor("SCORES", "TYPE_FP32", (-1,))
DECISION = Tensor("DECISION", "TYPE_STRING", (1,))


def write_repository(export: Path, out: Path, triton: TritonConfig,
                     serve: ServeConfig) -> dict[str, Any]:
    """(Re)write ``out``; returns what ``pillsnap_repository.json`` records."""
    pipe = OnnxPipeline.open(export)
    _clear(out)
    version = triton.model_version
    classes = len(pipe.recipe.k_codes)
    det_size = pipe.recipe.detector.size if pipe.recipe.detector is not None else None
    features = _classifier(pipe, out, triton, classes)
    _preprocess(pipe, out, version, triton, serve)
    _postprocess(pipe, out, version, triton, classes=classes, features=features)
    ensembles = ["pill_single"]
    _crop(pipe, out, "crop_classify_single", triton, serve, pipeline="single", classes=classes,
          features=features)
    _ensemble(out, "pill_single", version, pipe, detect=pipe.single_detects)
    if det_size is not None:
        _detector(pipe, out, triton, det_size)
        _crop(pipe, out, "crop_classify", triton, serve, pipeline="combo", classes=classes,
              features=features)
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


def _python_model(pipe: OnnxPipeline, out: Path, name: str, template: str, *, version: str,
                  settings: dict[str, Any]) -> Path:
    """A python model's version folder: its source, the contract copies, the export's
    recipe and its own settings."""
    folder = _model_dir(out, name, version)
    shutil.copyfile(TEMPLATES / template, folder / "model.py")
    for copy, source in CONTRACT_COPIES.items():
        shutil.copyfile(source, folder / copy)
    shutil.copyfile(pipe.bundle.folder / RECIPE_FILE, folder / RECIPE_FILE)
    _write(folder / "pillsnap.json", json.dumps(settings, indent=2) + "\n")
    return folder


def _onnx_model(pipe: OnnxPipeline, out: Path, name: str, triton: TritonConfig, *,
                inputs: list[Tensor], outputs: list[Tensor], max_batch: int) -> None:
    folder = _model_dir(out, name, triton.model_version)
    record = export_record(pipe.bundle.folder)
    shutil.copyfile(pipe.bundle.folder / record[name]["file"], folder / "model.onnx")
    shutil.copyfile(TEMPLATES / "onnx_cpu.py", folder / "model.py")
    s = OnnxSettings(max_batch, triton.max_queue_delay_us, triton.instances, triton.warmup,
                     triton.tensorrt_fp16, triton.cpu_threads)
    _write(out / name / "config.pbtxt", configs.onnx_gpu_config(name, inputs, outputs, s))
    _write(out / name / "configs" / "cpu.pbtxt",
           configs.onnx_cpu_config(name, inputs, outputs, s))


def _classifier(pipe: OnnxPipeline, out: Path, triton: TritonConfig, classes: int) -> int:
    """The classifier's model; returns the width of its features output (0: none)."""
    size = pipe.recipe.crop.size
    outputs = [Tensor("logits", "TYPE_FP32", (classes,))]
    features = 0
    if ops.FEATURES_OUTPUT in pipe.outputs:
        shape = next(o.shape for o in pipe.bundle.classifier.get_outputs()
                     if o.name == ops.FEATURES_OUTPUT)
        features = int(shape[1])
        outputs.append(Tensor(ops.FEATURES_OUTPUT, "TYPE_FP32", (features,)))
    _onnx_model(pipe, out, "classifier", triton,
                inputs=[Tensor("images", "TYPE_FP32", (3, size, size))],
                outputs=outputs, max_batch=triton.classifier_max_batch)
    return features


def _detector(pipe: OnnxPipeline, out: Path, triton: TritonConfig, size: int) -> None:
    # the letterbox is always size x size; anchors and classes follow from the model
    _onnx_model(pipe, out, "detector", triton,
                inputs=[Tensor("images", "TYPE_FP32", (3, size, size))],
                outputs=[Tensor("output0", "TYPE_FP32", (-1, -1))],
                max_batch=triton.detector_max_batch)


def _preprocess(pipe: OnnxPipeline, out: Path, version: str, triton: TritonConfig,
                serve: ServeConfig) -> None:
    _python_model(pipe, out, "preprocess", "preprocess.py", version=version,
                  settings={"max_pixels": serve.max_pixels, "max_bytes": serve.max_upload_bytes})
    det_size = pipe.recipe.detector.size if pipe.recipe.detector is not None else None
    outputs = [PHOTO]
    if det_size is not None:
        outputs += [Tensor("DET_IMAGES", "TYPE_FP32", (1, 3, det_size, det_size)), PLACEMENT]
    _write(out / "preprocess" / "config.pbtxt", configs.python_config(
        "preprocess", [configs.IMAGE], outputs, count=triton.instances))


def _crop(pipe: OnnxPipeline, out: Path, name: str, triton: TritonConfig, serve: ServeConfig,
          *, pipeline: str, classes: int, features: int) -> None:
    detect = pipeline == "combo" or pipe.single_detects
    _python_model(pipe, out, name, "crop_classify.py", version=triton.model_version, settings={
        "pipeline": pipeline, "detect": detect, "max_pixels": serve.max_pixels,
        "classifier": {"model": "classifier", "max_batch": triton.classifier_max_batch,
                       "outputs": pipe.outputs, "classes": classes, "features": features}})
    # IMAGE: where preprocess left PHOTO empty, the crops are decoded from the upload itself
    inputs = [configs.IMAGE, PHOTO, *([DETECTIONS, PLACEMENT] if detect else [])]
    outputs = [Tensor("LOGITS", "TYPE_FP32", (-1, classes)), _features(features), BOXES,
               SCORES, DECISION]
    _write(out / name / "config.pbtxt", configs.python_config(
        name, inputs, outputs, count=triton.instances))


def _features(width: int) -> Tensor:
    """The crops' pooled features (n, d); (n, 0) for a classifier without that output."""
    return Tensor("FEATURES", "TYPE_FP32", (-1, width or -1))


def _postprocess(pipe: OnnxPipeline, out: Path, version: str, triton: TritonConfig, *,
                 classes: int, features: int) -> None:
    folder = _python_model(pipe, out, "postprocess", "postprocess.py", version=version,
                           settings={})
    _write(folder / "drugs.json", json.dumps(pipe.bundle.drugs, ensure_ascii=False) + "\n")
    if pipe.bundle.gallery is not None:
        shutil.copyfile(pipe.bundle.gallery.path, folder / GALLERY_FILE)
    inputs = [Tensor("LOGITS", "TYPE_FP32", (-1, classes)), _features(features), BOXES,
              SCORES, DECISION, configs.TOP_K]
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
    parts = {"LOGITS": "logits", "FEATURES": "features", "BOXES": "boxes",
             "SCORES": "scores", "DECISION": "decision"}
    steps.append(Step(crop, crop_in, parts))
    steps.append(Step("postprocess", {**parts, "TOP_K": "TOP_K"}, {"RESULT": "RESULT"}))
    _model_dir(out, name, version)  # Triton wants a version folder, even an empty one
    _write(out / name / "config.pbtxt", configs.ensemble_config(
        name, steps, model_version=pipe.bundle.model_version))
