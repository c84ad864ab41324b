"""An export folder opened for serving: ONNX Runtime sessions, class index, drug table.

    bundle = load_bundle(Path("artifacts/export"))
    bundle.classifier.run(["logits"], {"images": x})

Checks that the pieces belong together (the classifier's class hash = classes.json's) and
reads every setting from the models' metadata, so a server needs nothing but the folder.
No torch here: ``serve`` depends on this, never on training code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from pillsnap.data.classes import ClassIndex
from pillsnap.data.drugs import load_drugs
from pillsnap.errors import DataError, ModelError

EXPORT_FILE = "export.json"


@dataclass(frozen=True)
class ModelInfo:
    """A model's ONNX metadata_props, JSON values decoded."""

    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise ModelError(f"model metadata lacks {key!r}: re-export with "
                             "python -m pillsnap.export") from None


@dataclass
class Bundle:
    folder: Path
    classifier: ort.InferenceSession
    classifier_info: ModelInfo
    detector: ort.InferenceSession | None
    detector_info: ModelInfo | None
    k_codes: tuple[str, ...]
    drugs: dict[str, dict[str, Any]]

    @property
    def model_version(self) -> str:
        versions = [str(self.classifier_info["model_version"])]
        if self.detector_info is not None:
            versions.append(str(self.detector_info["model_version"]))
        return "+".join(versions)


def _decoded(raw: dict[str, str]) -> ModelInfo:
    values: dict[str, Any] = {}
    for key, text in raw.items():
        try:
            values[key] = json.loads(text)
        except ValueError:
            values[key] = text  # plain strings are stored as they are
    return ModelInfo(values)


def open_session(path: Path, *, threads: int = 0, providers: list[Any] | None = None,
                 spinning: bool = False) -> tuple[ort.InferenceSession, ModelInfo]:
    """An ONNX Runtime session (CPU unless ``providers`` says otherwise) and its metadata.

    ``spinning``: whether the session's CPU threads busy-wait after a run (ONNX Runtime's
    default). Off here: the pipeline runs two sessions in turn, each with a thread pool of
    its own, and one's spinning threads slow the other's run. Measured on 2 cores
    (``benchmarks/ort_sessions.py``): taking turns, YOLO11m 382 -> 341 ms and
    EfficientNetV2-S 130 -> 96 ms; alone, either way the same.
    """
    if not path.is_file():
        raise ModelError(f"model not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning",
                                     "1" if spinning else "0")
    try:
        sess = ort.InferenceSession(str(path), options,
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load ONNX model {path}: {exc}") from None
    return sess, _decoded(dict(sess.get_modelmeta().custom_metadata_map))


def load_bundle(folder: Path, *, threads: int = 0,
                providers: list[Any] | None = None) -> Bundle:
    """Open ``folder`` (written by ``python -m pillsnap.export``)."""
    record_path = folder / EXPORT_FILE
    if not record_path.is_file():
        raise ModelError(f"{folder} is not a finished export (no {EXPORT_FILE}): run "
                         "python -m pillsnap.export --ckpt RUN/best.pt --out " + str(folder))
    record = json.loads(record_path.read_text(encoding="utf-8"))
    classifier, cls_info = open_session(folder / record["classifier"]["file"], threads=threads,
                                        providers=providers)
    try:
        classes = ClassIndex.load(folder / record["classes"])
        drugs = load_drugs(folder / record["drugs"])
    except DataError as exc:
        raise ModelError(f"export {folder}: {exc}") from None
    if cls_info["class_hash"] != classes.hash or tuple(cls_info["k_codes"]) != classes.k_codes:
        raise ModelError(f"export {folder}: the classifier was trained on class index "
                         f"{cls_info['class_hash']} but classes.json is {classes.hash}")
    detector, det_info = None, None
    if record.get("detector"):
        detector, det_info = open_session(folder / record["detector"]["file"],
                                          threads=threads, providers=providers)
    return Bundle(folder, classifier, cls_info, detector, det_info, classes.k_codes, drugs)
