"""PNG figures for the evaluation report: risk-coverage, reliability diagram, open-set scores.

    from pillsnap.eval import metrics, plots
    plots.plot_risk_coverage({"classifier": metrics.risk_coverage(conf, ok)}, "risk.png")
    plots.plot_reliability(metrics.calibration(conf, ok), "reliability.png")
    plots.plot_open_set(known, unknown, threshold=0.42, path="open_set.png")

matplotlib comes with the training extras (ultralytics needs it) but not with a serve-only
install; there each function logs one ``decision: plots=skipped`` line and returns None, so
the evaluation still writes its numbers. Figures are drawn on matplotlib's Agg canvas
directly (no pyplot), which needs no display and leaves the global backend alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from pillsnap.logs import log_decision

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

SIZE = (5.0, 4.0)  # inches; at DPI a 500x400 PNG, small enough to embed in a report
DPI = 100


def _figure() -> Figure | None:
    """A fresh figure on the Agg canvas, or None (logged) without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        log_decision(log, "plots", "skipped", "matplotlib is not installed")
        return None
    figure = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=DPI)
    return path


def plot_risk_coverage(curves: dict[str, dict[str, Any]], path: str | Path) -> Path | None:
    """Risk (error among the answered) against coverage, one line per named curve.

        plot_risk_coverage({"top-1": metrics.risk_coverage(conf, ok)}, "risk_coverage.png")

    ``curves`` maps a legend label to a ``metrics.risk_coverage`` result; empty curves are
    left out. Returns the PNG's path, or None without matplotlib.
    """
    figure = _figure()
    if figure is None:
        return None
    ax = figure.add_subplot()
    for label, curve in curves.items():
        coverage = np.asarray(curve["coverage"], dtype=np.float64)
        if coverage.size:
            risk = 1.0 - np.asarray(curve["accuracy"], dtype=np.float64)
            ax.step(coverage, risk, where="post", label=label)
    ax.set(title="Risk-coverage (answer only above a confidence)",
           xlabel="coverage (share of samples answered)",
           ylabel="risk (error rate among answered)", xlim=(0.0, 1.0))
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    return _save(figure, path)


def plot_reliability(calib: dict[str, Any], path: str | Path) -> Path | None:
    """Reliability diagram: each confidence bin's accuracy against the diagonal.

        plot_reliability(metrics.calibration(conf, ok), "reliability.png")

    ``calib`` is a ``metrics.calibration`` result; empty bins are drawn as gaps and the ECE
    is in the title. Returns the PNG's path, or None without matplotlib.
    """
    figure = _figure()
    if figure is None:
        return None
    counts = list(calib.get("count", []))
    edges = np.asarray(calib.get("edges", np.linspace(0.0, 1.0, len(counts) + 1)),
                       dtype=np.float64)
    lefts, widths = edges[:-1], np.diff(edges)
    # An empty bin has no accuracy (None): a zero-height bar keeps the bins aligned.
    accuracy = [0.0 if a is None else float(a) for a in calib.get("accuracy", [])]
    ax = figure.add_subplot()
    if accuracy:
        bars = ax.bar(lefts, accuracy, width=widths, align="edge", edgecolor="black",
                      linewidth=0.5, alpha=0.8, label="accuracy in bin")
        # how many answers each bar stands on: a bar of 3 says little
        for bar, count in zip(bars, counts, strict=False):
            if count:
                ax.annotate(str(count), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            xytext=(0, 2), textcoords="offset points", ha="center",
                            va="bottom", fontsize="x-small")
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="gray", label="perfect calibration")
    ax.set_title(f"Reliability (ECE {float(calib.get('ece', 0.0)):.3f}, {sum(counts)} "
                 "samples; answers per bin above the bars)", fontsize="small", pad=24)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0.0, 1.0), ylim=(0.0, 1.08))
    ax.grid(alpha=0.3)
    # above the axes, where no bar can be
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize="x-small",
              frameon=False)
    return _save(figure, path)


def plot_open_set(known_scores: ArrayLike, unknown_scores: ArrayLike, threshold: float,
                  path: str | Path) -> Path | None:
    """Histograms of known-class and unknown-class scores with the acceptance threshold.

        threshold, fpr = metrics.fpr_at_tpr(known, unknown)
        plot_open_set(known, unknown, threshold, "open_set.png")

    Both histograms share bins and are normalised to densities, so sets of different sizes
    compare; a non-finite threshold draws no line. Returns the PNG's path, or None without
    matplotlib.
    """
    figure = _figure()
    if figure is None:
        return None
    known = np.asarray(known_scores, dtype=np.float64).ravel()
    unknown = np.asarray(unknown_scores, dtype=np.float64).ravel()
    both = np.concatenate([known, unknown])
    ax = figure.add_subplot()
    if both.size:
        bins = np.histogram_bin_edges(both, bins=30)
        for scores, label, color in ((known, "known classes", "tab:blue"),
                                     (unknown, "unknown classes", "tab:red")):
            if scores.size:
                ax.hist(scores, bins=bins, density=True, alpha=0.5, color=color,
                        label=f"{label} (n={scores.size})")
    if np.isfinite(threshold):
        ax.axvline(threshold, color="black", linestyle="--",
                   label=f"threshold {threshold:.3f}")
    ax.set(title="Open-set scores (accept >= threshold)",
           xlabel="score (higher: more like a known class)", ylabel="density")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return _save(figure, path)
