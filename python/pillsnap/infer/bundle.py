"""An export folder opened for serving: ONNX Runtime sessions, the recipe, the gallery, drugs.

    bundle = load_bundle(Path("artifacts/export"))
    bundle.recipe.crop.size, bundle.gallery.current().k_codes
    bundle.classifier.run(["logits", "features"], {"images": x})

The folder's layout (``python -m pillsnap.export`` writes it; ``export.json`` last, so a
folder without it is unfinished):

    recipe.json               the serving recipe (pillsnap.contract.recipe), verbatim also
                              in the classifier's ONNX metadata
    gallery.npz               the class statistics and enrolled drugs (pillsnap.contract.gallery)
    drugs.json                the drug table of the classifier's K-codes
    classifier/model.onnx     logits + features
    detector/model.onnx       with a detector (the combo pipeline)

Everything is checked to belong together (the recipe in the model is the recipe beside it,
the gallery's classes are the classifier's), so a server needs nothing but the folder.
No torch here: ``serve`` depends on this, never on training code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from pillsnap.contract.gallery import GALLERY_FILE, GalleryError, GalleryFile
from pillsnap.contract.recipe import METADATA_KEY, RECIPE_FILE, Recipe, RecipeError
from pillsnap.data.classes import ClassIndex
from pillsnap.data.drugs import load_drugs
from pillsnap.errors import DataError, ModelError

EXPORT_FILE = "export.json"
CLASSIFIER_FILE = "classifier/model.onnx"
DETECTOR_FILE = "detector/model.onnx"
DRUGS_FILE = "drugs.json"


@dataclass
class Bundle:
    folder: Path
    classifier: ort.InferenceSession
    detector: ort.InferenceSession | None
    recipe: Recipe
    gallery: GalleryFile | None  # None: no class statistics (open set by the logits alone)
    drugs: dict[str, dict[str, Any]]
    model_version: str  # classifier's, "+" the detector's

    @property
    def k_codes(self) -> tuple[str, ...]:
        return self.recipe.k_codes


def open_session(path: Path, *, threads: int = 0, providers: list[Any] | None = None,
                 spinning: bool = False) -> tuple[ort.InferenceSession, dict[str, str]]:
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
    return sess, dict(sess.get_modelmeta().custom_metadata_map)


def read_recipe(folder: Path) -> Recipe:
    """``folder/recipe.json`` (ModelError naming what is wrong)."""
    path = folder / RECIPE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{folder} has no {RECIPE_FILE}: it was exported by an older PillSnap "
                         "or not at all; run python -m pillsnap.export --ckpt RUN/best.pt --out "
                         f"{folder}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    try:
        return Recipe.from_json(text, str(path))
    except RecipeError as exc:
        raise ModelError(str(exc)) from None


def load_bundle(folder: Path, *, threads: int = 0, providers: list[Any] | None = None,
                recipe: Recipe | None = None) -> Bundle:
    """Open ``folder`` (written by ``python -m pillsnap.export``).

    ``recipe``: the export's own calibration passes the recipe it is about to write; the
    folder is then unfinished (no ``export.json``, no ``recipe.json`` yet) and not checked.
    """
    if recipe is None:
        if not (folder / EXPORT_FILE).is_file():
            raise ModelError(f"{folder} is not a finished export (no {EXPORT_FILE}): run "
                             "python -m pillsnap.export --ckpt RUN/best.pt --out " + str(folder))
        recipe = read_recipe(folder)
        expected = recipe.to_json()
    else:
        expected = None
    classifier, meta = open_session(folder / CLASSIFIER_FILE, threads=threads,
                                    providers=providers)
    if ClassIndex(recipe.k_codes).hash != recipe.class_hash:
        raise ModelError(f"{folder}: the recipe's class hash {recipe.class_hash} does not match "
                         "its K-codes; the recipe was edited or damaged")
    if expected is not None and meta.get(METADATA_KEY) != expected:
        raise ModelError(f"{folder / RECIPE_FILE} is not the recipe the classifier was exported "
                         "with (the folder was edited by hand?); export again")
    versions = [meta.get("model_version", "unknown")]
    detector = None
    if recipe.detector is not None:
        detector, det_meta = open_session(folder / DETECTOR_FILE, threads=threads,
                                          providers=providers)
        versions.append(det_meta.get("model_version", "unknown"))
    try:
        drugs = load_drugs(folder / DRUGS_FILE)
    except DataError as exc:
        raise ModelError(f"export {folder}: {exc}") from None
    gallery = _gallery(folder, recipe)
    return Bundle(folder, classifier, detector, recipe, gallery, drugs, "+".join(versions))


def _gallery(folder: Path, recipe: Recipe) -> GalleryFile | None:
    path = folder / GALLERY_FILE
    if not path.is_file():
        if recipe.open_set is not None and recipe.open_set.score == "mahalanobis":
            raise ModelError(f"{folder} has no {GALLERY_FILE}, which the recipe's open-set "
                             "score (mahalanobis) needs; export again")
        return None
    try:
        gallery = GalleryFile(path)
    except GalleryError as exc:
        raise ModelError(str(exc)) from None
    trained = gallery.current()
    if trained.k_codes[:trained.trained] != recipe.k_codes:
        raise ModelError(f"{path} holds the statistics of other classes than the classifier's "
                         "(another export's gallery?); export again")
    return gallery


def export_record(folder: Path) -> dict[str, Any]:
    """``export.json`` of a finished export."""
    path = folder / EXPORT_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ModelError(f"{folder} is not a finished export (no {EXPORT_FILE})") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
