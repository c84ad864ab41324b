"""Read a classifier ``best.pt`` for export: the network with its weights and what serving needs.

    ck = load_classifier_checkpoint(Path("runs/exp01/best.pt"))
    ck.model(images)   # eval mode, EMA weights when the run kept them

The checkpoint holds the state dicts, the serving ``recipe`` (crop geometry, normalisation,
class index, temperature, open-set rule: ``pillsnap.contract.recipe``), the ``gallery`` of
class statistics the open-set score needs (after the last epoch), and the resolved config as
YAML (written by ``pillsnap.train.run_state.checkpoint_state``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from pillsnap.config.loader import get_dotted
from pillsnap.contract.gallery import Gallery, GalleryError
from pillsnap.contract.recipe import Recipe, RecipeError
from pillsnap.data.classes import ClassIndex
from pillsnap.errors import ModelError
from pillsnap.logs import log_decision
from pillsnap.train.checkpoint import CheckpointError, load_checkpoint
from pillsnap.train.model import classifier_from_checkpoint
from pillsnap.train.openset import gallery_from_state
from pillsnap.train.recipe import recipe_of

logger = logging.getLogger(__name__)

REQUIRED = ("model", "arch", "image_size", "classes", "config")


@dataclass
class ClassifierCheckpoint:
    path: Path
    model: torch.nn.Module
    weights: str  # "ema" or "model"
    recipe: Recipe  # what serving must repeat (pillsnap.contract.recipe)
    gallery: Gallery | None  # the class statistics; None: a last.pt, or fit_samples=0
    epoch: int
    config: dict[str, Any]  # the resolved training config (plain YAML data)

    @property
    def arch(self) -> str:
        return self.recipe.arch

    @property
    def image_size(self) -> int:
        return self.recipe.crop.size

    @property
    def k_codes(self) -> tuple[str, ...]:
        return self.recipe.k_codes

    @property
    def class_hash(self) -> str:
        return self.recipe.class_hash

    @property
    def temperature(self) -> float:
        return self.recipe.temperature

    def setting(self, dotted: str, default: Any) -> Any:
        """A training setting, e.g. ``pack.pill_margin`` (``default`` when absent)."""
        value = get_dotted(self.config, dotted)
        return default if value is None else value


def load_classifier_checkpoint(path: Path) -> ClassifierCheckpoint:
    """Load ``path`` (a CheckpointError when missing or unreadable, ModelError when foreign)."""
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:  # torch's own text runs to a page: keep its first line
        first = str(exc).splitlines()[0]
        hint = "" if "not found" in first else (
            " (a PillSnap classifier best.pt holds tensors and plain data only; an "
            "ultralytics detector checkpoint goes to --det-ckpt)")
        raise CheckpointError(first + hint) from None
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ModelError(f"{path} is not a PillSnap classifier checkpoint (no {missing}); "
                         "pass the classifier's best.pt to --ckpt and the detector's "
                         "det/best.pt to --det-ckpt")
    k_codes = tuple(state["classes"]["k_codes"])
    if ClassIndex(k_codes).hash != state["classes"]["hash"]:
        raise ModelError(f"{path}: class hash {state['classes']['hash']} does not match its "
                         "K-codes; the checkpoint was edited or damaged")
    arch, size = str(state["arch"]), int(state["image_size"])
    weights = "ema" if state.get("ema") is not None else "model"
    try:
        model, weights = classifier_from_checkpoint(state)
    except RuntimeError as exc:
        raise ModelError(f"{path}: the {weights} weights do not fit {arch} with "
                         f"{len(k_codes)} classes: {str(exc).splitlines()[0]}") from None
    log_decision(logger, "export weights", weights,
                 "EMA weights (what evaluation used)" if weights == "ema"
                 else "the checkpoint has no EMA weights")
    try:
        recipe = recipe_of(state)
        gallery = (gallery_from_state(state, k_codes) if state.get("gallery") is not None
                   or (state.get("open_set") or {}).get("gaussian") else None)
    except (RecipeError, GalleryError, KeyError) as exc:
        raise ModelError(f"{path}: its serving recipe is damaged ({exc}); export another "
                         "checkpoint or train again") from None
    if recipe.k_codes != k_codes or recipe.crop.size != size or recipe.arch != arch:
        raise ModelError(f"{path}: the recipe's classes, input size or architecture differ "
                         "from the checkpoint's; the checkpoint was edited or damaged")
    return ClassifierCheckpoint(
        path=path, model=model.eval(), weights=weights, recipe=recipe, gallery=gallery,
        epoch=int(state.get("epoch", -1)), config=yaml.safe_load(state["config"]) or {})
