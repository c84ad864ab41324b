"""Temperature scaling: one scalar T fitted on validation logits so confidences are honest.

Serving divides logits by the T saved in the checkpoint before the softmax; accuracy does
not change (the argmax is the same), only how much a "0.99" can be trusted. ECE (expected
calibration error, 15 equal-width bins) before and after is reported with it.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F


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
    """The T > 0 minimising the NLL of ``softmax(logits / T)`` (LBFGS on log T)."""
    logits = logits.detach().float()
    log_t = torch.zeros(1, requires_grad=True)  # log T keeps T positive without constraints
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    return min(max(temperature, 0.05), 20.0)  # guard against a degenerate split


def calibrate(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Fit T and report ECE before and after."""
    temperature = fit_temperature(logits, labels)
    return {"temperature": temperature,
            "ece_before": expected_calibration_error(logits, labels),
            "ece_after": expected_calibration_error(logits / temperature, labels)}
