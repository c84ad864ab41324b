"""The serving recipe as training makes it: from the config, then calibrated on validation.

    recipe = training_recipe(cfg, classes)                  # at the start of a run
    recipe = calibrated(recipe, metrics, cfg)               # after each evaluation
    recipe = recipe_of(state)                               # from a best.pt / last.pt

The typed value is ``pillsnap.contract.recipe.Recipe``; the session holds it, every
checkpoint stores it (``Recipe.to_dict``), export reads it back with ``recipe_of``. A
checkpoint written before the recipe existed kept the same facts under other keys (the
resolved config, ``temperature``, ``open_set``): ``recipe_of`` reads those too, in one place.
"""

from __future__ import annotations

import logging
from typing import Any

import yaml

from pillsnap.config.loader import get_dotted
from pillsnap.config.schema import PillsnapConfig
from pillsnap.contract.ops import IMAGENET_MEAN, IMAGENET_STD
from pillsnap.contract.recipe import Crop, OpenSet, Recipe
from pillsnap.data.classes import ClassIndex
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)

FALLBACK_SCORE = "max_logit"  # served until the feature statistics exist (after training)


def training_recipe(cfg: PillsnapConfig, classes: ClassIndex) -> Recipe:
    """What the config says serving must repeat; temperature 1 and no open-set rule yet."""
    c = cfg.models.classifier
    crop = Crop(size=c.image_size, short_side=cfg.pack.short_side, region=cfg.pack.region,
                margin=cfg.pack.pill_margin, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return Recipe(arch=c.arch, k_codes=classes.k_codes, class_hash=classes.hash, crop=crop)


def calibrated(recipe: Recipe, metrics: dict[str, Any], cfg: PillsnapConfig) -> Recipe:
    """``recipe`` with an evaluation's temperature and logit-score thresholds
    (``pillsnap.train.calibrate``). The configured score serves when it has a threshold;
    the feature score gets its own after the last epoch, until then ``max_logit`` stands in."""
    wanted = cfg.models.classifier.open_set
    thresholds = metrics["open_set"]["thresholds"]
    if not thresholds:
        return recipe.replace(temperature=float(metrics["temperature"]))
    score = wanted.score if wanted.score in thresholds else FALLBACK_SCORE
    rule = OpenSet(score=score, threshold=thresholds[score], tar=wanted.tar,
                   thresholds=thresholds, samples=int(metrics.get("samples", 0)))
    return recipe.replace(temperature=float(metrics["temperature"]), open_set=rule)


def recipe_of(state: dict[str, Any]) -> Recipe:
    """The recipe a checkpoint holds (``RecipeError`` when it is damaged)."""
    if state.get("recipe") is not None:
        return Recipe.from_dict(state["recipe"])
    return _legacy_recipe(state)


def _legacy_recipe(state: dict[str, Any]) -> Recipe:
    config = yaml.safe_load(state["config"]) or {}

    def setting(dotted: str, default: Any) -> Any:
        value = get_dotted(config, dotted)
        return default if value is None else value

    k_codes = tuple(state["classes"]["k_codes"])
    crop = Crop(size=int(state["image_size"]), short_side=setting("pack.short_side", 480),
                region=setting("pack.region", "pill"), margin=setting("pack.pill_margin", 0.15),
                mean=IMAGENET_MEAN, std=IMAGENET_STD)
    old = state.get("open_set") or {}
    thresholds = {k: float(v) for k, v in (old.get("thresholds") or {}).items()}
    rule = None
    if thresholds:
        score = str(old.get("score", FALLBACK_SCORE))
        score = score if score in thresholds else FALLBACK_SCORE
        rule = OpenSet(score=score, threshold=thresholds[score], tar=float(old.get("tar", 0.95)),
                       thresholds=thresholds)
    log_decision(logger, "recipe", "rebuilt", "the checkpoint predates the serving recipe: "
                 "its config, temperature and open-set thresholds were read instead")
    return Recipe(arch=str(state["arch"]), k_codes=k_codes, class_hash=str(state["classes"]
                                                                             ["hash"]),
                  crop=crop, temperature=float(state.get("temperature") or 1.0), open_set=rule)
