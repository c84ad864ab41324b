"""ONNX ``metadata_props``: what a server must know about a model, stored inside the model.

    write_metadata(Path("artifacts/export/classifier/model.onnx"), {"task": "classify"})
    read_metadata(Path("artifacts/export/classifier/model.onnx"))["model_version"]
    write_recipe(Path("artifacts/export"), recipe)   # recipe.json + the classifier's copy

Values are strings (ONNX's rule); lists and dicts are stored as JSON. A server reads them
with ONNX Runtime (``session.get_modelmeta().custom_metadata_map``), no ``onnx`` needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from pillsnap.contract.recipe import METADATA_KEY, RECIPE_FILE, Recipe
from pillsnap.errors import ModelError
from pillsnap.infer.bundle import CLASSIFIER_FILE


def as_text(value: Any) -> str:
    """A metadata value as ONNX stores it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def write_metadata(path: Path, values: Mapping[str, Any]) -> None:
    """Add (or replace) ``values`` in the model's metadata_props, keeping other entries."""
    model = onnx.load(str(path))
    kept = {p.key: p.value for p in model.metadata_props if p.key not in values}
    del model.metadata_props[:]
    for key, value in {**kept, **{k: as_text(v) for k, v in values.items()}}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def read_metadata(path: Path) -> dict[str, str]:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"cannot read ONNX model {path}: {exc}") from None
    return {p.key: p.value for p in model.metadata_props}


def write_recipe(folder: Path, recipe: Recipe, model: Mapping[str, Any] | None = None) -> None:
    """The serving recipe, one text in two places: the classifier's ONNX metadata (with
    ``model``'s entries) and ``recipe.json`` beside the models (what servers read; the
    bundle checks that both are the same)."""
    text = recipe.to_json()
    write_metadata(folder / CLASSIFIER_FILE, {**(model or {}), METADATA_KEY: text})
    (folder / RECIPE_FILE).write_text(text, encoding="utf-8")
