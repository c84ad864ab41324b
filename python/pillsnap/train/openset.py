"""How unlike every known drug a pill is: Gaussian class statistics of the pooled features.

    rule, gallery = fit_open_set(model, train_pack, val_pack, recipe=recipe, device=device,
                                 samples=100_000, score="mahalanobis")

Logits cannot say "none of these": a network trained on 12 classes maps a 13th drug onto
the class it resembles most, often with a larger logit than its own classes get (measured on
the synthetic held-out drugs: AUROC about 0.5 for msp, max_logit and energy alike;
docs/benchmarks.md). The pooled features keep what the logits throw away. So, once per run
on the best checkpoint: the class means and one shared covariance of the features of up to
``samples`` training crops (Lee et al. 2018's Mahalanobis score, the covariance shrunk
towards its mean variance so that a few thousand crops in 1,280 dimensions still invert),
kept as a ``pillsnap.contract.gallery.Gallery``; then, on the known validation crops, the
threshold of every score that accepts ``recipe.open_set.tar`` of them, and the temperature
of the Gaussian posterior over class means (what enrolled drugs are judged by).
Called by ``pillsnap.train.classifier`` after the last epoch (it rewrites best.pt); the
exported classifier has the features as its second output (``FeatureClassifier``), and
``pillsnap.contract.decide`` scores them against the gallery in both servers.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pillsnap.contract import decide
from pillsnap.contract.gallery import Gallery, class_spread
from pillsnap.contract.recipe import OpenSet, Recipe, accepting_threshold
from pillsnap.data.loader import PackLoader

logger = logging.getLogger(__name__)

SHRINK = 0.01  # covariance shrinkage towards (mean variance) x I: invertible, little bias
BATCH = 64
FITTED_ON = "validation crops of the labelled boxes"


class FeatureClassifier(torch.nn.Module):
    """A timm classifier that returns its pooled features beside its logits (what export
    writes: the servers score the features against the gallery)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logits_and_features(self.model, x)


def logits_and_features(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
    """The logits and the pooled features they are made from (timm's pre-logits)."""
    features = model.forward_head(model.forward_features(x), pre_logits=True)
    return model.get_classifier()(features), features


def gaussian_stats(features: torch.Tensor, labels: torch.Tensor,
                   classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class means (classes, d), the shrunk shared precision matrix (d, d) and the crops
    per class (classes,); a class with no crop has count 0 (it never vouches for a pill)."""
    f = features.double()
    d = f.shape[1]
    means = torch.zeros(classes, d, dtype=torch.float64)
    counts = torch.bincount(labels, minlength=classes)
    means.index_add_(0, labels, f)
    seen = counts > 0
    means[seen] /= counts[seen, None].double()
    centred = f - means[labels]
    cov = centred.T @ centred / max(len(f) - 1, 1)
    cov = (1 - SHRINK) * cov + SHRINK * (torch.trace(cov) / d) * torch.eye(d, dtype=cov.dtype)
    return means, torch.linalg.inv(cov), counts


@torch.no_grad()
def collect_features(model: torch.nn.Module, pack: Path, recipe: Recipe, device: torch.device,
                     limit: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, features and labels of eval crops of ``pack`` (a seeded random ``limit``)."""
    # rank 0 alone fits, on the whole pack: not its DDP shard
    loader = PackLoader(pack, batch_size=BATCH, image_size=recipe.crop.size, train=False,
                        shuffle=limit is not None, seed=0, drop_last=False, rank=0,
                        world_size=1)
    mean = torch.tensor(recipe.crop.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(recipe.crop.std, device=device).view(1, 3, 1, 1) * 255
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


def fit_open_set(model: torch.nn.Module, train_pack: Path, val_pack: Path, *, recipe: Recipe,
                 device: torch.device, samples: int, tar: float,
                 score: str) -> tuple[OpenSet, Gallery]:
    """The open-set rule (``score``'s threshold accepting ``tar`` of the known validation
    crops, every score's threshold, the posterior's temperature) and the gallery of the
    training crops' class statistics."""
    model = model.eval().to(device)
    _, train_features, train_labels = collect_features(model, train_pack, recipe, device,
                                                       samples)
    means, precision, counts = gaussian_stats(train_features, train_labels,
                                              len(recipe.k_codes))
    gallery = Gallery.from_statistics(recipe.k_codes, means.numpy(), precision.numpy(),
                                      counts.numpy())
    spread = class_spread(gallery.whitened(train_features.numpy()), train_labels.numpy(),
                          gallery.means)
    gallery = dataclasses.replace(gallery, spread=spread)
    val_logits, val_features, val_labels = collect_features(model, val_pack, recipe, device,
                                                            None)
    logits, features = val_logits.numpy(), val_features.numpy()
    by_kind = decide.scores(logits, features, recipe=recipe, gallery=gallery)
    thresholds = {kind: accepting_threshold(values, tar) for kind, values in by_kind.items()}
    distance_t = decide.fit_distance_temperature(gallery.distances(features),
                                                 val_labels.numpy())
    rule = OpenSet(score=score, threshold=thresholds[score], tar=tar, thresholds=thresholds,
                   fitted_on=FITTED_ON, samples=len(logits), distance_temperature=distance_t)
    logger.info("open set: Gaussian statistics of %d training crops (%d features); "
                "thresholds accepting %.0f%% of %d validation crops: %s; posterior "
                "temperature %.4g", len(train_labels), train_features.shape[1], tar * 100,
                len(logits), ", ".join(f"{k} {v:.4g}" for k, v in thresholds.items()),
                distance_t)
    return rule, gallery


def gallery_state(gallery: Gallery) -> dict[str, Any]:
    """The gallery as a checkpoint holds it (tensors: ``weights_only`` loads them)."""
    return {"means": torch.from_numpy(gallery.means), "counts": torch.from_numpy(gallery.counts),
            "whiten": torch.from_numpy(gallery.whiten), "spread": gallery.spread}


def gallery_from_state(state: dict[str, Any], k_codes: tuple[str, ...]) -> Gallery:
    """A checkpoint's gallery; older checkpoints kept ``open_set.gaussian`` (means and the
    precision matrix) instead, converted here."""
    if state.get("gallery") is not None:
        g = state["gallery"]
        return Gallery(k_codes, g["means"].numpy(), g["counts"].numpy(), g["whiten"].numpy(),
                       trained=len(k_codes), spread=float(g.get("spread", 0.0)))
    gaussian = (state.get("open_set") or {})["gaussian"]
    means = gaussian["means"].double().numpy()
    counts = np.where(np.abs(means).max(axis=1) < 1e6, gaussian.get("fit_samples", 1), 0)
    return Gallery.from_statistics(k_codes, means, gaussian["precision"].double().numpy(),
                                   counts)
