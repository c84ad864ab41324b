"""The open-set statistics: the graph's score is the Mahalanobis distance, and it rejects
what lies outside every known class where the logits cannot.

    PYTHONPATH=python python -m pytest tests/train/test_openset.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pillsnap.contract import ops
from pillsnap.train.openset import SHRINK, GaussianScore, gaussian_stats


def test_the_score_is_minus_the_nearest_mahalanobis_distance() -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(300, 6, generator=gen)
    labels = torch.arange(300) % 3
    features += labels[:, None].float() * 4.0
    means, precision = gaussian_stats(features, labels, classes=3)
    for c in range(3):
        assert torch.allclose(means[c], features[labels == c].mean(0), atol=1e-5)
    centred = (features - means[labels]).double()
    cov = centred.T @ centred / 299
    cov = (1 - SHRINK) * cov + SHRINK * torch.trace(cov) / 6 * torch.eye(6, dtype=cov.dtype)
    assert torch.allclose(precision.double(), torch.linalg.inv(cov), atol=1e-4)
    probe = torch.randn(5, 6, generator=gen) * 3
    brute = torch.stack([((probe - m) @ precision * (probe - m)).sum(1) for m in means], 1)
    score = GaussianScore(means, precision)(probe)
    assert score.shape == (5, 1)
    assert torch.allclose(score[:, 0], -brute.min(1).values, rtol=1e-4, atol=1e-3)


def test_a_class_without_training_crops_never_vouches_for_a_pill() -> None:
    features = torch.tensor([[0.0, 0.0], [0.2, 0.1], [5.0, 5.0], [5.1, 4.9]])
    labels = torch.tensor([0, 0, 2, 2])  # class 1 has no crop
    means, precision = gaussian_stats(features, labels, classes=3)
    near_empty_class = GaussianScore(means, precision)(torch.tensor([[0.1, 0.05]]))
    assert float(near_empty_class) > -10  # close to class 0, not to the missing class 1
    assert torch.all(means[1].abs() > 1e3)


def test_the_feature_score_flags_what_the_logits_call_confident() -> None:
    """Two known clusters and a linear head; a probe far out along the head's direction
    gets a larger logit than any known crop (the logit scores accept it), but it lies far
    from both class means: only the Mahalanobis score rejects it."""
    gen = torch.Generator().manual_seed(3)
    known = torch.cat([torch.randn(200, 4, generator=gen) * 0.3 + torch.tensor([2.0, 0, 0, 0]),
                       torch.randn(200, 4, generator=gen) * 0.3 - torch.tensor([2.0, 0, 0, 0])])
    labels = torch.cat([torch.zeros(200), torch.ones(200)]).long()
    head = torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]])
    probe = torch.tensor([[9.0, 0, 6.0, 0]])
    logits_known, logits_probe = (known @ head.T).numpy(), (probe @ head.T).numpy()
    threshold = np.quantile(ops.known_score(logits_known, "max_logit"), 0.05)
    assert ops.known_score(logits_probe, "max_logit")[0] > threshold  # named, confidently
    gaussian = GaussianScore(*gaussian_stats(known, labels, classes=2))
    known_scores = gaussian(known).squeeze(1).numpy()
    probe_score = gaussian(probe).squeeze(1).numpy()
    assert probe_score[0] < np.quantile(known_scores, 0.05)  # flagged unknown
    graph = ops.known_score(logits_probe, "mahalanobis", graph=probe_score)
    assert graph[0] == pytest.approx(float(probe_score[0]))
    with pytest.raises(ValueError, match="known_score output"):
        ops.known_score(logits_probe, "mahalanobis")
