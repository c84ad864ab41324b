"""The serving recipe: what training decided and every server must repeat, as one typed value.

    from pillsnap.contract.recipe import Recipe          # Triton: import pillsnap_recipe
    recipe = Recipe.from_json(Path("artifacts/export/recipe.json").read_text())
    recipe.crop.size, recipe.crop.short_side, recipe.temperature, recipe.open_set.threshold

The classifier learnt crops made one way (a pill's box grown by ``margin``, squared, shrunk to
``short_side``, centre-cropped to ``size``, normalised with ``mean``/``std``); its logits are
calibrated by ``temperature``; a pill is unknown under ``open_set.threshold`` of the score
``open_set.score``; the detector's boxes are kept at ``detector.conf``. Serving must repeat
each of these exactly, so they live here once, as frozen dataclasses (timm's
``PretrainedCfg`` is the model), with the class list they belong to:
- training builds it from the config and updates it as it calibrates (``Session.recipe``);
  ``best.pt`` stores it (``to_dict``);
- export adds the detector's settings and the threshold refitted on served crops
  (``OpenSet.refit``), then writes it once: ``recipe.json`` beside the models and, the same
  text, the classifier's ONNX metadata (``METADATA_KEY``);
- the embedded pipeline, Triton's python models (a copy of this file), eval and bench read it
  with ``from_json``, which refuses unknown, missing or ill-typed keys with the key named.

A new serving setting is a field here plus the code that uses it. numpy only and no
``pillsnap`` import: ``python -m pillsnap.export --triton`` copies this file into Triton's
python models as ``pillsnap_recipe.py``. Test: ``python -m pytest tests/contract``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT = 1  # bump when a field changes meaning; older readers then refuse the recipe
RECIPE_FILE = "recipe.json"
METADATA_KEY = "pillsnap_recipe"  # the classifier ONNX model's copy
OPEN_SET_SCORES = ("msp", "max_logit", "energy", "mahalanobis")
REGIONS = ("pill", "image")


class RecipeError(ValueError):
    """A recipe that cannot be used: the message names the key and what is wrong with it."""


@dataclass(frozen=True)
class Crop:
    """How a classifier crop is made (``pillsnap.contract.ops.classifier_crops``)."""

    size: int  # the classifier's input side
    short_side: int | None  # the pack writer's shrink of the region; None: none
    region: str  # pill: the box grown by margin and squared; image: the whole photo
    margin: float  # of the box's size, on each side
    mean: tuple[float, float, float]  # of uint8 / 255, per RGB channel
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        _check(self.size >= 1, "crop.size", self.size, "a positive integer")
        _check(self.short_side is None or self.short_side >= 1, "crop.short_side",
               self.short_side, "a positive integer or null")
        _check(self.region in REGIONS, "crop.region", self.region, f"one of {REGIONS}")
        _check(0.0 <= self.margin <= 1.0, "crop.margin", self.margin, "within 0..1")
        for name in ("mean", "std"):
            value = getattr(self, name)
            _check(len(value) == 3, f"crop.{name}", value, "three numbers (RGB)")
            object.__setattr__(self, name, tuple(float(v) for v in value))


@dataclass(frozen=True)
class OpenSet:
    """A pill is ``unknown`` when its ``score`` (``pillsnap.contract.decide``) is under
    ``threshold``, the value that ``tar`` of known pills reach on ``fitted_on``."""

    score: str
    threshold: float
    tar: float
    # every score's threshold on the same pills (eval compares them)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    fitted_on: str = "validation crops of the labelled boxes"
    samples: int = 0  # pills behind the thresholds
    # the Gaussian posterior over class means, softmax(-distance / (2 T)): how sure the
    # nearest class is, for drugs enrolled without retraining (fitted on validation crops)
    distance_temperature: float = 1.0

    def __post_init__(self) -> None:
        _check(self.score in OPEN_SET_SCORES, "open_set.score", self.score,
               f"one of {OPEN_SET_SCORES}")
        _check(math.isfinite(self.threshold), "open_set.threshold", self.threshold, "finite")
        _check(0.0 < self.tar < 1.0, "open_set.tar", self.tar, "between 0 and 1")
        _check(self.distance_temperature > 0, "open_set.distance_temperature",
               self.distance_temperature, "positive")
        object.__setattr__(self, "thresholds", {str(k): float(v)
                                                for k, v in dict(self.thresholds).items()})

    def refit(self, scores: Mapping[str, Iterable[float]], *, fitted_on: str) -> OpenSet:
        """This rule with every score's threshold set again on ``scores`` of known pills (one
        list per score kind), keeping ``tar``: what export does on served crops."""
        values = {kind: np.asarray(list(v), dtype=np.float64) for kind, v in scores.items()}
        thresholds = {kind: accepting_threshold(v, self.tar) for kind, v in values.items()}
        if self.score not in thresholds:
            raise RecipeError(f"no {self.score} scores to refit the open-set threshold on")
        samples = len(values[self.score])
        return dataclasses.replace(self, threshold=thresholds[self.score],
                                   thresholds=thresholds, fitted_on=fitted_on, samples=samples)


@dataclass(frozen=True)
class Detector:
    """How the detector's output becomes boxes (``pillsnap.contract.ops.detections``)."""

    size: int  # the square letterbox side
    conf: float
    iou: float
    max_det: int

    def __post_init__(self) -> None:
        _check(self.size >= 1, "detector.size", self.size, "a positive integer")
        _check(0.0 <= self.conf <= 1.0, "detector.conf", self.conf, "within 0..1")
        _check(0.0 <= self.iou <= 1.0, "detector.iou", self.iou, "within 0..1")
        _check(self.max_det >= 1, "detector.max_det", self.max_det, "a positive integer")


@dataclass(frozen=True)
class Recipe:
    """The whole serving recipe (see the module docstring)."""

    arch: str
    k_codes: tuple[str, ...]  # the classifier's classes, in logit order
    class_hash: str  # pillsnap.data.classes.ClassIndex(k_codes).hash
    crop: Crop
    temperature: float = 1.0
    open_set: OpenSet | None = None  # None: answers never flag a pill unknown
    detector: Detector | None = None  # None: no detector (single mode only)
    format: int = FORMAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "k_codes", tuple(str(k) for k in self.k_codes))
        _check(len(self.k_codes) > 0, "k_codes", self.k_codes, "at least one K-code")
        _check(len(set(self.k_codes)) == len(self.k_codes), "k_codes", "duplicates",
               "distinct K-codes")
        _check(self.temperature > 0, "temperature", self.temperature, "positive")
        _check(self.format == FORMAT, "format", self.format,
               f"{FORMAT} (this recipe was written by another PillSnap version: export the "
               "checkpoint again with this one)")

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The text written to recipe.json and the ONNX metadata (the same text in both)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Build and validate; unknown, missing or ill-typed keys raise ``RecipeError``."""
        values = _fields(cls, data, "")
        values["crop"] = _fields(Crop, _section(values, "crop"), "crop.", build=True)
        for key, kind in (("open_set", OpenSet), ("detector", Detector)):
            section = values.get(key)
            if section is not None:
                values[key] = _fields(kind, _section(values, key), f"{key}.", build=True)
        return _build(cls, values, "")

    @classmethod
    def from_json(cls, text: str, source: str = "recipe") -> Recipe:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RecipeError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RecipeError(f"{source} must hold a JSON object, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except RecipeError as exc:
            raise RecipeError(f"{source}: {exc}") from None


def accepting_threshold(scores: Iterable[float] | np.ndarray, share: float) -> float:
    """The highest threshold that ``share`` of ``scores`` reach (``score >= threshold``)."""
    ordered = np.sort(np.asarray(scores if isinstance(scores, np.ndarray) else list(scores),
                                 dtype=np.float64).reshape(-1))[::-1]
    if not ordered.size:
        raise RecipeError("no scores of known pills to set an open-set threshold on")
    needed = min(max(math.ceil(share * ordered.size - 1e-9), 1), ordered.size)
    return float(ordered[needed - 1])


def _check(ok: bool, key: str, value: Any, wanted: str) -> None:
    if not ok:
        raise RecipeError(f"{key} must be {wanted}, got {value!r}")


def _section(values: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = values[key]
    if not isinstance(section, Mapping):
        raise RecipeError(f"{key} must be an object, got {section!r}")
    return section


def _fields(kind: type, data: Mapping[str, Any], prefix: str,
            build: bool = False) -> Any:
    names = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise RecipeError(f"unknown key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"{prefix or 'a recipe'} has {', '.join(sorted(names))}")
    required = [n for n, f in names.items() if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    missing = [prefix + n for n in required if n not in data]
    if missing:
        raise RecipeError(f"missing key(s) {', '.join(missing)}")
    values = dict(data)
    return _build(kind, values, prefix) if build else values


def _build(kind: type, values: dict[str, Any], prefix: str) -> Any:
    try:
        return kind(**values)
    except RecipeError as exc:
        raise RecipeError(f"{prefix}{exc}" if prefix and not str(exc).startswith(prefix)
                          else str(exc)) from None
    except (TypeError, ValueError) as exc:  # a string where a number belongs, and the like
        raise RecipeError(f"{prefix or 'recipe '}values do not fit: {exc}") from None
