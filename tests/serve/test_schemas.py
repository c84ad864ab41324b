"""The API's documented bodies name exactly the answer's fields, which ``contract.ops`` owns.

    python -m pytest tests/serve/test_schemas.py -q

``ops`` defines the answer once (TypedDicts: both servers build it, Triton's copy included);
``serve/schemas.py`` documents it for OpenAPI. A field added on one side only would be an
answer the schema hides, or a schema field no backend fills.
"""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from pillsnap.contract import decide, ops
from pillsnap.contract.recipe import Crop, OpenSet, Recipe
from pillsnap.serve import schemas

# What the proxy adds on top of a backend's answer (routers/predict.py, ``_shaped``).
PROXY_PILL = {"low_confidence"}
PROXY_PREDICTION = {"low_confidence", "unknown"}


def _keys(typed: type) -> set[str]:
    return set(typing.get_type_hints(typed))


@pytest.mark.parametrize(("typed", "model", "added"), [
    (ops.Names, schemas.Names, set()),
    (ops.Imprints, schemas.Imprints, set()),
    (ops.Candidate, schemas.Candidate, set()),
    (ops.NearTwin, schemas.NearTwin, set()),
    (ops.Pill, schemas.Pill, PROXY_PILL),
    (ops.ImageSize, schemas.ImageSize, set()),
    (ops.Prediction, schemas.Prediction, PROXY_PREDICTION),
], ids=lambda v: getattr(v, "__name__", ""))
def test_schema_names_the_answers_fields(typed: type, model: type[BaseModel],
                                         added: set[str]) -> None:
    assert set(model.model_fields) == _keys(typed) | added


def test_an_answer_validates_against_the_schema() -> None:
    import numpy as np

    drugs = {"K-000001": {"edi_code": "640001", "edi_codes": ["640001"], "name_ko": "약",
                          "color1": "하양"}}
    recipe = Recipe(arch="a", k_codes=("K-000001", "K-000002"), class_hash="x",
                    crop=Crop(size=32, short_side=None, region="pill", margin=0.1,
                              mean=(0.5,) * 3, std=(0.2,) * 3),
                    open_set=OpenSet("max_logit", threshold=5.0, tar=0.95))
    found = decide.identify(np.array([[3.0, 1.0]]), None, recipe=recipe, gallery=None,
                            drugs=drugs, k=2)
    boxes, scores = np.array([[10, 10, 50, 50]], np.float32), np.array([0.9], np.float32)
    selection = ops.select_pills("combo", boxes, scores, 100, 80, margin=0.1)
    answer = ops.prediction(ops.answer(found, selection, 100, 80), pipeline="combo",
                            model_version=None, timing_ms={"classify": 1.0})
    pills = [{**p, "low_confidence": False} for p in answer["pills"]]
    body = schemas.Prediction.model_validate(
        {**answer, "pills": pills, "low_confidence": False, "unknown": True})
    assert body.model_version == "unknown"
    assert body.pills[0].unknown and body.pills[0].bbox == [10.0, 10.0, 50.0, 50.0]
    assert body.pills[0].top1.edi_code == "640001" and body.pills[0].top1.colors == ["하양"]
