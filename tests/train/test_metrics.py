"""Evaluation numbers, the LR schedule and the batch search behave as documented."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from pillsnap.config.schema import TrainConfig
from pillsnap.train.autobatch import search_batch
from pillsnap.train.metrics import summarise
from pillsnap.train.optim import Schedule, scaled_lr


def test_summary_top1_top5_macro_f1_and_confusions() -> None:
    codes = ("K-1", "K-2", "K-3")
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 1, 1, 1, 2, 1])
    logits = torch.nn.functional.one_hot(preds, 3).float()
    report = summarise(logits, labels, codes)
    assert report["top1"] == pytest.approx(4 / 6)
    assert report["top5"] == 1.0  # three classes: top-k is capped at the class count
    f1 = [2 / 3, 2 * 0.5 * 1 / 1.5, 2 / 3]
    assert report["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert report["per_class"]["K-2"]["support"] == 2
    assert report["most_confused"] == [{"true": "K-1", "predicted": "K-2", "count": 1},
                                       {"true": "K-3", "predicted": "K-2", "count": 1}]


@pytest.mark.parametrize("kind", ["cosine", "onecycle"])
def test_schedule_warms_up_peaks_and_decays(kind: str) -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = Schedule(opt, TrainConfig(lr=0.1, epochs=10, warmup_epochs=1, scheduler=kind))
    lrs = [sched.set(p / 10) for p in range(101)]
    assert lrs[0] < 0.01 and max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert lrs[-1] < 0.002 and opt.param_groups[0]["lr"] == lrs[-1]
    peak = lrs.index(max(lrs))
    assert all(a <= b for a, b in pairwise(lrs[:peak + 1]))
    assert all(a >= b for a, b in pairwise(lrs[peak:]))


@pytest.mark.parametrize(("rule", "global_batch", "lr"), [
    ("sqrt", 512, 2e-3), ("sqrt", 32, 5e-4), ("linear", 512, 4e-3), ("none", 512, 1e-3),
    ("linear", 128, 1e-3),  # 64 x 2 accumulated: the configured batch, the configured lr
])
def test_lr_follows_the_global_batch_by_the_configured_rule(rule: str, global_batch: int,
                                                            lr: float) -> None:
    train = TrainConfig(lr=1e-3, batch_size=64, grad_accum=2, lr_scaling=rule)
    assert scaled_lr(train, global_batch) == pytest.approx(lr)


def test_batch_search_finds_the_largest_fitting_batch() -> None:
    tried: list[int] = []

    def fits(b: int) -> bool:
        tried.append(b)
        return b <= 100

    assert search_batch(fits, 64, 256) == 100
    assert tried[:2] == [64, 128]
    assert search_batch(lambda b: True, 64, 256) == 256
    assert search_batch(lambda b: False, 64, 256) == 1
