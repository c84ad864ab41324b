"""Temperature scaling makes over-confident scores honest without changing predictions."""

from __future__ import annotations

import pytest
import torch

from pillsnap.train.calibrate import calibrate, expected_calibration_error


def test_temperature_lowers_ece_of_an_overconfident_model() -> None:
    gen = torch.Generator().manual_seed(0)
    # A calibrated model's logits z (labels drawn from softmax(z)), reported 4x too large:
    # the classic over-confident network.
    z = torch.randn(4000, 10, generator=gen) * 1.5
    labels = torch.multinomial(z.softmax(1), 1, generator=gen).squeeze(1)
    logits = 4.0 * z
    result = calibrate(logits, labels)
    assert result["temperature"] == pytest.approx(4.0, rel=0.15)
    assert result["ece_before"] > 0.2
    assert result["ece_after"] < result["ece_before"] / 4
    scaled = logits / result["temperature"]
    assert torch.equal(scaled.argmax(1), logits.argmax(1))
    assert expected_calibration_error(scaled, labels) == result["ece_after"]


def test_a_perfect_validation_split_never_sharpens_confidences(
        caplog: pytest.LogCaptureFixture) -> None:
    """Every validation crop right: the NLL fit runs T towards 0 (every answer 1.00, also
    for drugs the model never saw); T stays 1 and one decision line says why."""
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(200) % 5
    logits = torch.randn(200, 5, generator=gen) * 0.5
    logits[torch.arange(200), labels] += 3.0  # right every time, softly
    assert torch.equal(logits.argmax(1), labels)
    with caplog.at_level("INFO"):
        result = calibrate(logits, labels)
    assert result["temperature_fitted"] < 0.5
    assert result["temperature"] == 1.0
    assert [r.message for r in caplog.records if "decision: temperature=1.0" in r.message]


def test_open_set_thresholds_accept_the_asked_share_of_known_samples() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(1000, 8, generator=gen) * 3
    labels = logits.argmax(1)
    result = calibrate(logits, labels, tar=0.9)
    thresholds = result["open_set"]["thresholds"]
    assert set(thresholds) == {"msp", "max_logit", "energy"} and result["open_set"]["tar"] == 0.9
    accepted = (logits.max(1).values >= thresholds["max_logit"]).float().mean().item()
    assert accepted == pytest.approx(0.9, abs=0.002)
    energy = torch.logsumexp(logits, 1)
    assert (energy >= thresholds["energy"]).float().mean().item() == pytest.approx(0.9, abs=0.002)
