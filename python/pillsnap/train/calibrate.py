"""Confidence calibration on the validation split: a temperature, and open-set thresholds.

Temperature scaling: one scalar T fitted on validation logits so confidences are honest.
Serving divides logits by the T saved in the checkpoint before the softmax; accuracy does
not change (the argmax is the same), only how much a "0.99" can be trusted. ECE (expected
calibration error, 15 equal-width bins) before and after is reported with it.

A fit can only sharpen (T < 1) what validation mistakes justify: on a split the model gets
(almost) all right, the NLL keeps falling as T shrinks, and a "fitted" T of 0.05 turns every
answer, including a drug the model never saw, into 1.00. With fewer than ``MIN_ERRORS``
mistakes T stays 1 (or the fitted softening, T > 1), in one decision line.

Open-set thresholds: for each logit score of ``pillsnap.contract.decide``, the value that
accepts ``tar`` of the known validation pills; serving flags a pill under it as unknown (the
feature score's threshold comes after training: ``pillsnap.train.openset``).
"""

from __future__ import annotations

import logging
from itertools import pairwise

import torch
import torch.nn.functional as F

from pillsnap.contract.decide import LOGIT_SCORES, logit_score
from pillsnap.contract.recipe import accepting_threshold
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)

MIN_ERRORS = 10  # validation mistakes needed before a fit may sharpen confidences
T_RANGE = (0.25, 20.0)


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor,
                               bins: int = 15) -> float:
    """Mean |accuracy - confidence| over confidence bins, weighted by bin size."""
    probs = logits.float().softmax(1)
    confidence, preds = probs.max(1)
    correct = (preds == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for lo, hi in pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            gap = (correct[inside].mean() - confidence[inside].mean()).abs()
            ece += gap * inside.float().mean()
    return float(ece)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, steps: int = 50) -> float:
    """The T > 0 minimising the NLL of ``softmax(logits / T)`` (LBFGS on log T), unbounded."""
    logits = logits.detach().float()
    log_t = torch.zeros(1, requires_grad=True)  # log T keeps T positive without constraints
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def choose_temperature(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(T to serve, T fitted): the fit, kept from sharpening on too few mistakes and bounded."""
    fitted = fit_temperature(logits, labels)
    errors = int((logits.argmax(1) != labels).sum())
    chosen = min(max(fitted, T_RANGE[0]), T_RANGE[1])
    if fitted < 1.0 and errors < MIN_ERRORS:
        chosen = 1.0
        log_decision(logger, "temperature", 1.0, f"the fit ({fitted:.3g}) would make answers "
                     f"more confident, but validation has {errors} mistakes (< {MIN_ERRORS}) "
                     "to justify it")
    elif chosen != fitted:
        log_decision(logger, "temperature", chosen, f"fitted {fitted:.3g} is outside "
                     f"{T_RANGE[0]}..{T_RANGE[1]}: a degenerate split")
    return chosen, fitted


def open_set_thresholds(logits: torch.Tensor, temperature: float,
                        tar: float) -> dict[str, float]:
    """Per logit open-set score, the threshold accepting ``tar`` of these (known) samples
    (the Mahalanobis one needs the features: ``pillsnap.train.openset``, after training)."""
    if not len(logits):
        return {}
    values = logits.detach().float().cpu().numpy()
    return {kind: accepting_threshold(logit_score(values, kind, temperature), tar)
            for kind in LOGIT_SCORES}


def calibrate(logits: torch.Tensor, labels: torch.Tensor,
              tar: float = 0.95) -> dict[str, object]:
    """Fit T, report ECE before and after, and the open-set thresholds at ``tar``."""
    temperature, fitted = choose_temperature(logits, labels)
    return {"temperature": temperature, "temperature_fitted": fitted,
            "ece_before": expected_calibration_error(logits, labels),
            "ece_after": expected_calibration_error(logits / temperature, labels),
            "open_set": {"tar": tar,
                         "thresholds": open_set_thresholds(logits, temperature, tar)}}
