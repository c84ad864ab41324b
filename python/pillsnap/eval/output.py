"""The evaluation's files: ``eval_report.json``, ``eval_summary.md`` and PNG plots.

    paths = write_outputs(report, served, Path("runs/exp01/eval"))
    print(summary_text(report))       # the markdown summary, also what the demo prints

``agreement`` compares two backends' answers on the same photos (``--export`` and
``--triton-url`` together).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pillsnap.eval import plots
from pillsnap.eval.collect import Served
from pillsnap.eval.report import SELECTIVE_TARGET

REPORT_FILE = "eval_report.json"
SUMMARY_FILE = "eval_summary.md"


def agreement(first: list[Served], second: list[Served]) -> dict[str, Any]:
    """Share of photos whose answers name the same K-codes (in order) with the same flags."""
    both = [(a, b) for a, b in zip(first, second, strict=True)
            if a.error is None and b.error is None]

    def key(s: Served) -> list[tuple[str, bool]]:
        return [(p["top1"]["k_code"], bool(p.get("unknown"))) for p in s.pills]

    same = [a.sample.name for a, b in both if key(a) == key(b)]
    return {"photos": len(both), "same_answer": len(same) / len(both) if both else 0.0,
            "different": [a.sample.name for a, b in both if key(a) != key(b)][:20]}


def write_outputs(report: dict[str, Any], served: list[Served], out: Path,
                  json_path: Path | None = None) -> dict[str, Path | None]:
    """Write the report, the summary and the plots into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    report_path = json_path or out / REPORT_FILE
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    (out / SUMMARY_FILE).write_text(summary_text(report), encoding="utf-8")
    selective = report["selective"]
    paths: dict[str, Path | None] = {"report": report_path, "summary": out / SUMMARY_FILE}
    paths["risk_coverage"] = plots.plot_risk_coverage(
        {"top-1 confidence": selective["curve"]}, out / "risk_coverage.png")
    paths["reliability"] = plots.plot_reliability(selective["calibration"],
                                                  out / "reliability.png")
    known, unknown = _served_scores(served)
    if known and unknown:
        setting = report["open_set"].get("served") or {}
        threshold = float(setting.get("threshold", float("nan")))
        paths["open_set"] = plots.plot_open_set(known, unknown, threshold, out / "open_set.png")
    return paths


def _served_scores(served: list[Served]) -> tuple[list[float], list[float]]:
    known: list[float] = []
    unknown: list[float] = []
    for s in served:
        if s.error is not None or s.sample.kind == "combo" or not s.pills:
            continue
        score = s.pills[0].get("open_set_score")
        if score is not None:
            (known if s.sample.pills[0].known else unknown).append(float(score))
    return known, unknown


def summary_text(report: dict[str, Any]) -> str:
    """The report in a page of markdown: what a person reads first."""
    lines = [f"# Evaluation ({report['backend']} backend)", ""]
    photos = report["photos"]
    lines.append(f"{photos['total']} photos ({photos['single']} single-pill, {photos['combo']} "
                 f"combination), {len(photos['failed'])} failed.")
    single, combo = report["single"], report["combo"]
    if single["photos"]:
        top_k = next(k for k in single if k.startswith("top") and k != "top1")
        lines += ["", "## Single-pill photos (known drugs)",
                  f"- top-1 {single['top1']:.3f}, {top_k} {single[top_k]:.3f} over "
                  f"{single['photos']} photos; whole-photo fallbacks {single['whole_photo']}, "
                  f"no answer {single['no_answer']}"]
    if combo["photos"]:
        lines += ["", "## Combination photos",
                  f"- mAP@0.5 {combo['map50']:.3f}, mAP@0.5:0.95 {combo['map50_95']:.3f}",
                  f"- pills found {combo['pill_recall']:.3f}, identified "
                  f"{combo['identified']:.3f} of {combo['pills']}; photos all right "
                  f"{combo['all_right_photos']:.3f}; extra boxes {combo['extra_boxes']}"]
    lines += ["", "## Confidence", *_selective_lines(report["selective"])]
    lines += ["", "## Unknown drugs (not in the class index)", *_open_set_lines(
        report["open_set"])]
    lines += ["", "## Latency (ms, per photo as the caller saw it)"]
    for pipeline, lat in report["latency_ms"].items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in lat["stages_p50"].items())
        lines.append(f"- {pipeline}: p50 {lat['p50']:.1f}, p95 {lat['p95']:.1f}, p99 "
                     f"{lat['p99']:.1f} over {lat['n']} (stage p50: {stages})")
    confused = report["classes"]["most_confused"][:5]
    if confused:
        lines += ["", "## Most confused (true -> answered)"]
        lines += [f"- {c['true']} {c['true_name'] or ''} -> {c['predicted']} "
                  f"{c['predicted_name'] or ''}: {c['count']}" for c in confused]
    if "agreement" in report:
        agree = report["agreement"]
        lines += ["", f"Backends agree on {agree['same_answer']:.3f} of {agree['photos']} "
                      "photos."]
    lines += ["", "## Targets", *[
        f"- {'PASS' if t['pass'] else 'FAIL'} {t['name']}: {t['value']:.3f} {t['op']} "
        f"{t['target']:g}" for t in report["targets"]], ""]
    return "\n".join(lines)


def _selective_lines(selective: dict[str, Any]) -> list[str]:
    reached = selective[f"threshold_for_{SELECTIVE_TARGET:g}"]
    lines = [f"- {selective['answers']} identification answers, accuracy "
             f"{selective['accuracy']:.3f}, ECE {selective['calibration']['ece']:.3f}"]
    if reached is None:
        lines.append(f"- no confidence threshold reaches {SELECTIVE_TARGET:.0%} accuracy")
    else:
        lines.append(f"- {SELECTIVE_TARGET:.0%} accuracy when answering at confidence >= "
                     f"{reached['threshold']:.3f}, covering {reached['coverage']:.1%}")
    return lines


def _open_set_lines(open_set: dict[str, Any]) -> list[str]:
    if not open_set["unknown_pills"]:
        return [f"- {open_set['note']}"]
    lines = []
    if "auroc" in open_set:
        lines.append(f"- served score: AUROC {open_set['auroc']:.3f}, false accepts at 95% "
                     f"known accepted {open_set['far_at_tar95']:.3f}")
    for name in ("distinct", "twins"):
        group = open_set[name]
        if group["pills"]:
            lines.append(f"- {name}: {group['pills']} unknown pills, {group['flagged_unknown']}"
                         f" flagged unknown, {group['named_confidently']} named as a known drug"
                         f" with no flag ({group['named_confidently_share']:.1%})")
    lines.append(f"- known pills flagged unknown: {open_set['known_flagged_unknown']:.1%}")
    for kind, sep in open_set.get("scores", {}).items():
        lines.append(f"- score {kind}: AUROC {sep['auroc']:.3f}, false accepts "
                     f"{sep['far_at_tar95']:.3f}")
    return lines
