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
