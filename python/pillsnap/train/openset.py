"""How unlike every known drug a pill is: Gaussian class statistics of the pooled features.

    stats = fit_open_set(model, train_pack, val_pack, image_size=384, device=device,
                         samples=100_000, tar=0.95, temperature=1.2, score="mahalanobis")

Logits cannot say "none of these": a network trained on 12 classes maps a 13th drug onto
the class it resembles most, often with a larger logit than its own classes get (measured on
the synthetic held-out drugs: AUROC about 0.5 for msp, max_logit and energy alike;
docs/benchmarks.md). The pooled features keep what the logits throw away. So, once per run
on the best checkpoint: the class means and one shared covariance of the features of up to
``samples`` training crops (Lee et al. 2018's Mahalanobis score, the covariance shrunk
towards its mean variance so that a few thousand crops in 1,280 dimensions still invert),
and, on the known validation crops, the threshold of every score that accepts ``tar`` of
them. ``GaussianScore`` turns the statistics into ``known_score = -min_c (f - mu_c)^T P
(f - mu_c)`` (higher: more like a known class); export bakes it into the ONNX graph as a
second output, so both servers read one number per crop.
Called by ``pillsnap.train.classifier`` after the last epoch (it rewrites best.pt).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from pillsnap.contract.ops import IMAGENET_MEAN, IMAGENET_STD, known_scores
from pillsnap.data.loader import PackLoader
from pillsnap.train.calibrate import accepting_threshold

logger = logging.getLogger(__name__)

SHRINK = 0.01  # covariance shrinkage towards (mean variance) x I: invertible, little bias
BATCH = 64


class GaussianScore(torch.nn.Module):
    """Pooled features (n, d) -> known_score (n, 1): minus the smallest Mahalanobis distance
    to a class mean under the shared precision matrix ``P``."""

    def __init__(self, means: torch.Tensor, precision: torch.Tensor) -> None:
        super().__init__()
        means, precision = means.float(), precision.float()
        # (f - m)^T P (f - m) = f^T P f - 2 f^T (P m) + m^T P m: two matmuls per batch
        self.register_buffer("precision", precision)
        self.register_buffer("projected", means @ precision)  # (classes, d): P m per class
        self.register_buffer("offset", (means @ precision * means).sum(1))  # m^T P m

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        f = features.float()
        quadratic = ((f @ self.precision) * f).sum(1, keepdim=True)
        distances = quadratic - 2.0 * f @ self.projected.T + self.offset
        return -distances.min(1, keepdim=True).values


class OpenSetClassifier(torch.nn.Module):
    """A timm classifier with the open-set score beside its logits (what export writes)."""

    def __init__(self, model: torch.nn.Module, score: GaussianScore) -> None:
        super().__init__()
        self.model, self.score = model, score

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = logits_and_features(self.model, x)
        return logits, self.score(features)


def logits_and_features(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
    """The logits and the pooled features they are made from (timm's pre-logits)."""
    features = model.forward_head(model.forward_features(x), pre_logits=True)
    return model.get_classifier()(features), features


def gaussian_stats(features: torch.Tensor, labels: torch.Tensor,
                   classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means (classes, d) and the shrunk shared precision matrix (d, d). A class with no
    crop gets a mean no feature comes near, so it never vouches for a pill."""
    f = features.double()
    d = f.shape[1]
    means = torch.zeros(classes, d, dtype=torch.float64)
    counts = torch.bincount(labels, minlength=classes).double()
    means.index_add_(0, labels, f)
    seen = counts > 0
    means[seen] /= counts[seen, None]
    centred = f - means[labels]
    cov = centred.T @ centred / max(len(f) - 1, 1)
    cov = (1 - SHRINK) * cov + SHRINK * (torch.trace(cov) / d) * torch.eye(d, dtype=cov.dtype)
    far = f.abs().max() * 1e3 + 1e3
    means[~seen] = far
    return means.float(), torch.linalg.inv(cov).float()


@torch.no_grad()
def _collect(model: torch.nn.Module, pack: Path, image_size: int, device: torch.device,
             limit: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, features and labels of eval crops of ``pack`` (a seeded random ``limit``)."""
    # rank 0 alone fits, on the whole pack: not its DDP shard
    loader = PackLoader(pack, batch_size=BATCH, image_size=image_size, train=False,
                        shuffle=limit is not None, seed=0, drop_last=False, rank=0,
                        world_size=1)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    logits, features, labels = [], [], []
    seen = 0
    for images, y in loader:
        x = (images.to(device).float() - mean) / std
        out, feat = logits_and_features(model, x)
        logits.append(out.float().cpu())
        features.append(feat.float().cpu())
        labels.append(y.clone())
        seen += len(y)
        if limit is not None and seen >= limit:
            break
    del loader
    return torch.cat(logits), torch.cat(features), torch.cat(labels).long()


def fit_open_set(model: torch.nn.Module, train_pack: Path, val_pack: Path, *,
                 image_size: int, device: torch.device, samples: int, tar: float,
                 temperature: float, score: str) -> dict[str, Any]:
    """The checkpoint's ``open_set`` entry: the score to serve, ``tar``, every score's
    threshold on the known validation crops, and the Gaussian statistics."""
    model = model.eval().to(device)
    _, train_features, train_labels = _collect(model, train_pack, image_size, device, samples)
    classes = int(model.get_classifier().out_features)
    means, precision = gaussian_stats(train_features, train_labels, classes)
    gaussian = GaussianScore(means, precision)
    val_logits, val_features, _ = _collect(model, val_pack, image_size, device, None)
    graph = gaussian(val_features).squeeze(1).numpy()
    values = val_logits.numpy()
    thresholds = {kind: accepting_threshold(scores, tar)
                  for kind, scores in known_scores(values, temperature, graph).items()}
    logger.info("open set: Gaussian statistics of %d training crops (%d features); "
                "thresholds accepting %.0f%% of %d validation crops: %s", len(train_labels),
                train_features.shape[1], tar * 100, len(values),
                ", ".join(f"{k} {v:.4g}" for k, v in thresholds.items()))
    return {"score": score, "tar": tar, "thresholds": thresholds,
            "gaussian": {"means": means, "precision": precision,
                         "fit_samples": len(train_labels)}}
