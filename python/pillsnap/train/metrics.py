"""Classification metrics from collected logits: top-1/top-5, macro-F1, per-class, confusions.

    python -m pillsnap.train ...   # writes runs/<name>/eval_report.json after each evaluation
"""

from __future__ import annotations

from typing import Any

import torch


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Rows: true class, columns: predicted class."""
    flat = labels * classes + preds
    return torch.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def summarise(logits: torch.Tensor, labels: torch.Tensor, k_codes: tuple[str, ...],
              pairs: int = 10) -> dict[str, Any]:
    """Top-1, top-5, macro-F1 (over classes present in the labels or predictions), the
    per-class report and the most confused (true, predicted) pairs."""
    classes = len(k_codes)
    preds = logits.argmax(1)
    top_k = min(5, classes)
    top5 = (logits.topk(top_k, dim=1).indices == labels[:, None]).any(1).float().mean()
    cm = confusion_matrix(preds, labels, classes).double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0,
                     2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    seen = (support > 0) | (predicted > 0)  # classes absent from both say nothing
    per_class = {k_codes[i]: {"precision": round(precision[i].item(), 4),
                              "recall": round(recall[i].item(), 4),
                              "f1": round(f1[i].item(), 4), "support": int(support[i].item())}
                 for i in range(classes) if seen[i]}
    off = cm.clone()
    off.fill_diagonal_(0)
    counts, flat = off.flatten().sort(descending=True)
    confused = [{"true": k_codes[int(i) // classes], "predicted": k_codes[int(i) % classes],
                 "count": int(c)} for c, i in zip(counts[:pairs], flat[:pairs], strict=True)
                if c > 0]
    return {"samples": int(labels.numel()),
            "top1": (preds == labels).float().mean().item(), "top5": top5.item(),
            "macro_f1": f1[seen].mean().item() if seen.any() else 0.0,
            "per_class": per_class, "most_confused": confused}


def as_record(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics (for log lines, TensorBoard and the checkpoint's summary)."""
    return {k: v for k, v in metrics.items()
            if k not in ("per_class", "most_confused", "open_set")}
