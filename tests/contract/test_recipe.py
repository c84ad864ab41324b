"""The serving recipe: one typed value, written as JSON and read back exactly, refusing what it
cannot use with the key named.

    python -m pytest tests/contract/test_recipe.py -q
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pillsnap.contract.recipe import (
    Crop,
    Detector,
    OpenSet,
    Recipe,
    RecipeError,
    accepting_threshold,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def recipe(**changes: object) -> Recipe:
    base = Recipe(arch="resnet18", k_codes=("K-000001", "K-000002"), class_hash="abc",
                  crop=Crop(size=112, short_side=160, region="pill", margin=0.15, mean=MEAN,
                            std=STD),
                  temperature=1.3,
                  open_set=OpenSet(score="mahalanobis", threshold=-400.0, tar=0.95,
                                   thresholds={"mahalanobis": -400.0, "msp": 0.6},
                                   samples=240, distance_temperature=12.5),
                  detector=Detector(size=224, conf=0.25, iou=0.45, max_det=32))
    return base.replace(**changes)


def test_the_json_reads_back_as_the_same_recipe() -> None:
    original = recipe()
    text = original.to_json()
    assert Recipe.from_json(text) == original
    assert Recipe.from_json(text).to_json() == text  # the same text, byte for byte
    assert json.loads(text)["crop"]["short_side"] == 160
    bare = recipe(open_set=None, detector=None)
    assert Recipe.from_json(bare.to_json()) == bare


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["crop"].update(sise=3), "unknown key.*crop.sise"),
    (lambda d: d.update(tempreature=1.0), "unknown key.*tempreature"),
    (lambda d: d["crop"].pop("margin"), "missing key.*crop.margin"),
    (lambda d: d["open_set"].pop("threshold"), "missing key.*open_set.threshold"),
    (lambda d: d["crop"].update(region="box"), "crop.region must be one of"),
    (lambda d: d["open_set"].update(score="entropy"), "open_set.score must be one of"),
    (lambda d: d["open_set"].update(tar=1.5), "open_set.tar must be between"),
    (lambda d: d.update(temperature=0), "temperature must be positive"),
    (lambda d: d["detector"].update(conf="high"), "detector"),
    (lambda d: d.update(k_codes=["K-1", "K-1"]), "k_codes must be distinct"),
    (lambda d: d.update(format=99), "format must be 1"),
    (lambda d: d.update(crop=[1, 2]), "crop must be an object"),
])
def test_a_damaged_recipe_names_what_is_wrong(edit: object, message: str) -> None:
    data = json.loads(recipe().to_json())
    edit(data)  # type: ignore[operator]
    with pytest.raises(RecipeError, match=message):
        Recipe.from_json(json.dumps(data), "export/recipe.json")


def test_broken_json_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match=r"export/recipe\.json is not valid JSON"):
        Recipe.from_json('{"arch": ', "export/recipe.json")
    with pytest.raises(RecipeError, match="must hold a JSON object"):
        Recipe.from_json("[]")


def test_refit_sets_every_threshold_where_tar_of_the_pills_pass() -> None:
    rule = recipe().open_set
    assert rule is not None
    rng = np.random.default_rng(0)
    scores = {"mahalanobis": rng.normal(-300, 40, 200), "msp": rng.uniform(0.2, 1.0, 200)}
    refit = rule.refit(scores, fitted_on="served validation photos")
    for kind, values in scores.items():
        assert np.mean(values >= refit.thresholds[kind]) == pytest.approx(0.95, abs=0.005)
    assert refit.threshold == refit.thresholds["mahalanobis"] and refit.samples == 200
    assert refit.fitted_on == "served validation photos" and refit.tar == rule.tar
    assert refit.distance_temperature == rule.distance_temperature
    with pytest.raises(RecipeError, match="no mahalanobis scores"):
        rule.refit({"msp": [0.5]}, fitted_on="x")


def test_accepting_threshold_by_hand() -> None:
    assert accepting_threshold([1.0, 2.0, 3.0, 4.0], 0.75) == 2.0
    assert accepting_threshold(np.array([5.0]), 0.95) == 5.0
    with pytest.raises(RecipeError, match="no scores"):
        accepting_threshold([], 0.95)
