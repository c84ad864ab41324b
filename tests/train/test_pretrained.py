"""Pretrained classifier weights that cannot be loaded stop the run, unless random init is
allowed: a run that silently starts from scratch is a different, much weaker run.

    python -m pytest tests/train/test_pretrained.py -q

No download can happen here, so timm's loader is replaced by one that fails the way an
offline machine does for ``pretrained=True`` and builds the real network otherwise.
"""

from __future__ import annotations

import logging

import pytest
import timm
import torch

from pillsnap.config.schema import ClassifierConfig
from pillsnap.errors import ModelError
from pillsnap.train.model import create_classifier

REAL_CREATE = timm.create_model


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def create(name: str, pretrained: bool = False, **kwargs: object) -> torch.nn.Module:
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")
        return REAL_CREATE(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", create)


def _cfg(**kwargs: object) -> ClassifierConfig:
    return ClassifierConfig(arch="resnet18", image_size=32, **kwargs)


def test_unloadable_weights_stop_with_the_way_out(offline: None) -> None:
    with pytest.raises(ModelError, match=r"resnet18's weights could not be loaded \(OSError: "
                                         r"We couldn't connect.*allow_random_init=true"):
        create_classifier(_cfg(pretrained=True), num_classes=3)


def test_random_init_when_allowed_is_one_fallback_line(
        offline: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    model = create_classifier(_cfg(pretrained=True, allow_random_init=True), num_classes=3)
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    lines = [r.getMessage() for r in caplog.records if "pretrained" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("fallback: pretrained=False (resnet18: "
                                                   "OSError")


def test_pretrained_false_never_asks_for_weights(offline: None) -> None:
    assert create_classifier(_cfg(pretrained=False), num_classes=3) is not None
