"""The open-set statistics: class means and one shared precision matrix of the pooled
features, kept as a gallery whose distances reject what lies outside every known class.

    PYTHONPATH=python python -m pytest tests/train/test_openset.py -q
"""

from __future__ import annotations

import numpy as np
import torch

from pillsnap.contract.gallery import Gallery
from pillsnap.train.openset import (
    SHRINK,
    gallery_from_state,
    gallery_state,
    gaussian_stats,
)


def test_the_statistics_are_the_class_means_and_the_shrunk_shared_covariance() -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(300, 6, generator=gen)
    labels = torch.arange(300) % 3
    features += labels[:, None].float() * 4.0
    means, precision, counts = gaussian_stats(features, labels, classes=3)
    assert counts.tolist() == [100, 100, 100]
    for c in range(3):
        assert torch.allclose(means[c].float(), features[labels == c].mean(0), atol=1e-5)
    centred = (features.double() - means[labels])
    cov = centred.T @ centred / 299
    cov = (1 - SHRINK) * cov + SHRINK * torch.trace(cov) / 6 * torch.eye(6, dtype=cov.dtype)
    assert torch.allclose(precision, torch.linalg.inv(cov), atol=1e-8)
    gallery = Gallery.from_statistics(("K-1", "K-2", "K-3"), means.numpy(), precision.numpy(),
                                      counts.numpy())
    probe = torch.randn(5, 6, generator=gen).double() * 3
    brute = torch.stack([((probe - m) @ precision * (probe - m)).sum(1) for m in means], 1)
    width = 1 + 1 / 100
    np.testing.assert_allclose(gallery.distances(probe.numpy()),
                               brute.numpy() / width + 6 * np.log(width), rtol=1e-4)


def test_a_class_without_training_crops_never_vouches_for_a_pill() -> None:
    features = torch.tensor([[0.0, 0.0], [0.2, 0.1], [5.0, 5.0], [5.1, 4.9]])
    labels = torch.tensor([0, 0, 2, 2])  # class 1 has no crop
    means, precision, counts = gaussian_stats(features, labels, classes=3)
    assert counts.tolist() == [2, 0, 2]
    gallery = Gallery.from_statistics(("K-1", "K-2", "K-3"), means.numpy(), precision.numpy(),
                                      counts.numpy())
    d2 = gallery.distances(np.array([[0.1, 0.05]]))
    assert np.isinf(d2[0, 1]) and d2[0, 0] < d2[0, 2]


def test_a_checkpoint_keeps_the_gallery_and_older_ones_convert() -> None:
    features = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(40) % 2
    means, precision, counts = gaussian_stats(features, labels, classes=2)
    codes = ("K-1", "K-2")
    gallery = Gallery.from_statistics(codes, means.numpy(), precision.numpy(), counts.numpy())
    again = gallery_from_state({"gallery": gallery_state(gallery)}, codes)
    probe = np.random.default_rng(0).normal(0, 2, (4, 3))
    np.testing.assert_allclose(again.distances(probe), gallery.distances(probe))
    # a checkpoint from before the gallery: means and precision under open_set.gaussian
    legacy = {"open_set": {"gaussian": {"means": means.float(), "precision": precision.float(),
                                        "fit_samples": 40}}}
    old = gallery_from_state(legacy, codes)

    def mahalanobis(g: Gallery, n: float) -> np.ndarray:  # undo the width
        return (g.distances(probe) - 3 * np.log(1 + 1 / n)) * (1 + 1 / n)

    np.testing.assert_allclose(mahalanobis(old, 40), mahalanobis(gallery, 20), rtol=1e-4)
