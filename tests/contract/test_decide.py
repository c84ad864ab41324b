"""From logits and features to the answer: the open-set verdict, drugs enrolled without
retraining, near twins.

    python -m pytest tests/contract/test_decide.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

from pillsnap.contract import decide
from pillsnap.contract.gallery import Enrolled, Gallery
from pillsnap.contract.recipe import Crop, OpenSet, Recipe

CODES = ("K-000001", "K-000002", "K-000003")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _recipe(score: str = "mahalanobis", threshold: float = -20.0, **open_set: float) -> Recipe:
    return Recipe(arch="resnet18", k_codes=CODES, class_hash="x",
                  crop=Crop(size=32, short_side=40, region="pill", margin=0.15, mean=MEAN,
                            std=STD),
                  open_set=OpenSet(score=score, threshold=threshold, tar=0.95, **open_set))


def _gallery() -> Gallery:
    """Three trained classes at +-4 on the first two axes of a 4-d feature space."""
    means = np.array([[4.0, 0, 0, 0], [-4.0, 0, 0, 0], [0, 4.0, 0, 0]])
    return Gallery.from_statistics(CODES, means, np.eye(4), np.full(3, 10_000))


def test_logit_scores_by_hand() -> None:
    logits = np.array([[2.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    assert decide.logit_score(logits, "max_logit").tolist() == [2.0, 0.5]
    energy = decide.logit_score(logits, "energy")
    assert energy == pytest.approx([np.log(np.e**2 + 2), 0.5 + np.log(3)])
    msp = decide.logit_score(logits, "msp", temperature=2.0)
    assert msp == pytest.approx([np.e / (np.e + 2), 1 / 3])
    with pytest.raises(ValueError, match="not a logit score"):
        decide.logit_score(logits, "entropy")


def test_a_logit_rule_flags_a_pill_unlike_every_known_class() -> None:
    """Same top-1 either way: only the open-set score says the second crop is no known drug."""
    logits = np.array([[9.0, 1.0, 0.0], [1.2, 1.0, 0.9]])
    recipe = _recipe("max_logit", 4.0)
    known, unknown = decide.identify(logits, None, recipe=recipe, gallery=None, drugs={}, k=2)
    assert known["top1"]["k_code"] == unknown["top1"]["k_code"] == "K-000001"
    assert (known["unknown"], unknown["unknown"]) == (False, True)
    assert (known["open_set_score"], unknown["open_set_score"]) == (9.0, 1.2)
    assert len(unknown["candidates"]) == 2  # the nearest known drugs stay listed
    bare = decide.identify(logits, None, recipe=recipe.replace(open_set=None), gallery=None,
                           drugs={}, k=1)
    assert [(p["unknown"], p["open_set_score"]) for p in bare] == [(False, None)] * 2
    assert decide.identify(np.zeros((0, 3)), None, recipe=recipe, gallery=None, drugs={},
                           k=1) == []


def test_candidates_carry_the_drug_table_metadata() -> None:
    drugs = {"K-000002": {"k_code": "K-000002", "edi_codes": ["643303740", "A01200351"],
                          "edi_code": "643303740", "name_ko": "가나정", "name_en": "Gana Tab.",
                          "company": "제약", "shape": "원형", "color1": "하양", "color2": "",
                          "print_front": "AB", "print_back": None}}
    pill = decide.identify(np.array([[1.0, 3.0, 0.0]]), None, recipe=_recipe("msp", 0.1),
                           gallery=None, drugs=drugs, k=3)[0]
    first, second = pill["candidates"][:2]
    assert first["edi_codes"] == ["643303740", "A01200351"] and first["edi_code"] == "643303740"
    assert first["name"] == {"ko": "가나정", "en": "Gana Tab."} and first["colors"] == ["하양"]
    assert first["imprints"] == {"front": "AB", "back": None}
    assert second["k_code"] == "K-000001" and second["edi_code"] is None
    assert sum(c["confidence"] for c in pill["candidates"]) == pytest.approx(1.0, abs=1e-5)


def test_the_feature_score_flags_what_the_logits_call_confident() -> None:
    """A crop far out along the head's direction gets a larger logit than any known crop,
    but its features lie far from every class mean: only the feature score says unknown."""
    gallery = _gallery()
    features = np.array([[4.1, 0.2, 0, 0], [12.0, 0, 8.0, 0]])
    logits = np.array([[4.1, -4.1, 0.2], [12.0, -12.0, 0.0]])
    recipe = _recipe("mahalanobis", -20.0)
    near, far = decide.identify(logits, features, recipe=recipe, gallery=gallery, drugs={}, k=3)
    assert near["top1"]["k_code"] == far["top1"]["k_code"] == "K-000001"
    assert not near["unknown"] and far["unknown"]
    assert near["open_set_score"] == pytest.approx(-0.05, abs=1e-3)
    assert far["open_set_score"] == pytest.approx(-(8.0**2 + 8.0**2) / (1 + 1e-4), abs=1e-3)
    by_kind = decide.scores(logits, features, recipe=recipe, gallery=gallery)
    assert set(by_kind) == {"msp", "max_logit", "energy", "mahalanobis"}
    assert by_kind["max_logit"][1] > by_kind["max_logit"][0]  # the logits prefer the far one
    with pytest.raises(ValueError, match="needs the classifier's features"):
        decide.identify(logits, None, recipe=recipe, gallery=gallery, drugs={}, k=1)


def test_an_enrolled_drug_is_named_and_the_known_answers_stay() -> None:
    gallery = _gallery()
    recipe = _recipe("mahalanobis", -20.0, distance_temperature=1.0)
    drug = {"name_ko": "새약정", "edi_codes": ["641234567"], "edi_code": "641234567"}
    photos = np.array([[0.1, -4.0, 0, 0], [-0.1, -4.2, 0, 0], [0.0, -3.8, 0, 0]])
    added = gallery.enrolled_with(Enrolled("K-777777", drug, 3), gallery.whitened(photos))
    known = np.array([[4.0, 0.1, 0, 0], [-3.9, 0, 0.1, 0]])
    new = np.array([[0.05, -4.1, 0, 0]])
    logits = np.array([[4.0, -4.0, 0.1], [-3.9, 3.9, 0.0], [0.0, 0.0, -4.1]])
    features = np.vstack([known, new])
    before = decide.identify(logits, features, recipe=recipe, gallery=gallery, drugs={}, k=2)
    after = decide.identify(logits, features, recipe=recipe, gallery=added, drugs={}, k=2)
    assert before[2]["unknown"] and not after[2]["unknown"]  # unknown, then known
    assert after[2]["top1"]["k_code"] == "K-777777" and after[2]["top1"]["confidence"] > 0.99
    assert after[2]["top1"]["name"]["ko"] == "새약정"
    assert after[2]["top1"]["edi_codes"] == ["641234567"]
    for b, a in zip(before[:2], after[:2], strict=True):  # the known pills answer as before
        assert a["top1"]["k_code"] == b["top1"]["k_code"]
        assert a["top1"]["confidence"] == pytest.approx(b["top1"]["confidence"], abs=1e-4)
    # with nothing enrolled the answer is the classifier's own softmax, exactly
    probs, codes = decide.posterior(logits, gallery.distances(features), recipe=recipe,
                                    gallery=gallery)
    assert codes == CODES
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                               rtol=1e-6)


def test_near_twins_say_what_tells_them_apart() -> None:
    look = {"shape": "원형", "color1": "하양", "color2": ""}
    drugs = {"K-000001": {**look, "print_front": "AB 10", "print_back": "HB 10",
                          "name_ko": "가정 10mg"},
             "K-000002": {**look, "print_front": "AB 20", "print_back": "HB 20",
                          "name_ko": "가정 20mg"},
             "K-000003": {"shape": "장방형", "color1": "노랑", "color2": "",
                          "print_front": "Z", "name_ko": "다정"}}
    logits = np.log(np.array([[0.55, 0.35, 0.10]]))
    pill = decide.identify(logits, None, recipe=_recipe("msp", 0.0), gallery=None,
                           drugs=drugs, k=3)[0]
    twins = pill["near_twins"]
    assert [t["k_code"] for t in twins] == ["K-000002"]  # K-000003 looks different
    assert twins[0]["differs_by"] == ["imprint (front): 'AB 10' vs 'AB 20'",
                                      "imprint (back): 'HB 10' vs 'HB 20'"]
    assert twins[0]["confidence"] == pytest.approx(0.35, abs=1e-6)
    sure = decide.identify(np.log(np.array([[0.97, 0.02, 0.01]])), None,
                           recipe=_recipe("msp", 0.0), gallery=None, drugs=drugs, k=3)[0]
    assert sure["near_twins"] == []  # a runner-up under 5% is not worth a look


def test_the_posterior_temperature_is_recovered_from_labelled_distances() -> None:
    rng = np.random.default_rng(0)
    d2 = rng.uniform(0, 40, (3000, 5))
    true_t = 3.0
    p = np.exp(-d2 / (2 * true_t))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(5, p=row) for row in p])
    assert decide.fit_distance_temperature(d2, labels) == pytest.approx(true_t, rel=0.1)
