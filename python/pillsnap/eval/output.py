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
from pillsnap.eval.report import SELECTIVE_TARGET, answered_pills

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
    """The served score of every answered pill, single and combination photos alike."""
    known: list[float] = []
    unknown: list[float] = []
    for a in answered_pills([s for s in served if s.error is None]):
        score = a.pill.get("open_set_score") if a.pill is not None else None
        if score is not None:
            (known if a.truth.known else unknown).append(float(score))
    return known, unknown


def summary_text(report: dict[str, Any]) -> str:
    """The report in a page of markdown: what a person reads first."""
    lines = [f"# Evaluation ({report['backend']} backend)", ""]
    photos = report["photos"]
    lines.append(f"{photos['total']} photos ({photos['single']} single-pill, {photos['combo']} "
                 f"combination), {len(photos['failed'])} failed.")
    single, combo, pills = report["single"], report["combo"], report["pills"]
    if pills["total"]:
        known, unknown = pills["known"], pills["unknown"]
        lines += ["", "## Every pill",
                  f"- right answers {pills['right_answers']:.3f} of {pills['total']} pills "
                  "(a known drug named, an unknown one flagged)",
                  f"- known drugs ({known['pills']}): identified {known['identified']:.3f}, "
                  f"flagged unknown {known['flagged_unknown']:.3f}, another drug named "
                  f"{known['wrong_drug']:.3f}, not found {known['not_found']:.3f}"]
        if unknown["pills"]:
            lines.append(f"- unknown drugs ({unknown['pills']}): flagged unknown "
                         f"{unknown['flagged_unknown']:.3f}, not found "
                         f"{unknown['not_found']:.3f}")
    if single["photos"]:
        top_k = next(k for k in single if k.startswith("top") and k != "top1")
        lines += ["", "## Single-pill photos (known drugs)",
                  f"- top-1 {single['top1']:.3f}, {top_k} {single[top_k]:.3f} over "
                  f"{single['photos']} photos; whole-photo fallbacks {single['whole_photo']}, "
                  f"no answer {single['no_answer']}"]
    if combo["photos"]:
        lines += ["", "## Combination photos",
                  f"- mAP@0.5 {combo['map50']:.3f}, mAP@0.5:0.95 {combo['map50_95']:.3f}",
                  f"- pills found {combo['pill_recall']:.3f} of {combo['pills']}; known pills "
                  f"identified {combo['identified']:.3f} of {combo['known_pills']}; photos all "
                  f"right {combo['all_right_photos']:.3f}; extra boxes {combo['extra_boxes']}"]
    lines += ["", "## Confidence", *_selective_lines(report["selective"])]
    lines += ["", "## Unknown drugs (not in the class index)", *_open_set_lines(
        report["open_set"])]
    if "enrolled" in report:
        lines += ["", "## Drugs enrolled without retraining", *_enrolled_lines(
            report["enrolled"])]
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


def _auroc(sep: dict[str, Any]) -> str:
    ci = sep.get("auroc_ci95")
    interval = f" (95% interval {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
    return (f"AUROC {sep['auroc']:.3f}{interval}, false accepts at 95% known accepted "
            f"{sep['far_at_tar95']:.3f}")


def _open_set_lines(open_set: dict[str, Any]) -> list[str]:
    if not open_set["unknown_pills"]:
        return [f"- {open_set['note']}"]
    lines = []
    if "auroc" in open_set:
        lines.append(f"- served score, all {open_set['unknown_pills']} unknown pills: "
                     f"{_auroc(open_set)}")
        for name in ("distinct", "twins"):
            sep = open_set[f"{name}_separation"]
            if sep["unknown"]:
                lines.append(f"  - {name}: {_auroc(sep)}")
    for name in ("distinct", "twins"):
        group = open_set[name]
        if group["pills"]:
            lines.append(f"- {name}: {group['pills']} unknown pills, {group['flagged_unknown']}"
                         f" flagged unknown, {group['named_confidently']} named as a known drug"
                         f" with no flag ({group['named_confidently_share']:.1%})")
    lines.append(f"- known pills flagged unknown: {open_set['known_flagged_unknown']:.1%}")
    worst = [d for d in open_set.get("per_drug", []) if d["auroc"] < 1.0][:5]
    if worst:
        lines.append("- worst unknown drugs: " + "; ".join(
            f"{d['k_code']} {d['name'] or ''} AUROC {d['auroc']:.3f}"
            + (f", named {d['named_as']} {d['named_confidently']}x" if d["named_as"] else "")
            for d in worst))
    for leak in open_set.get("leaks", [])[:5]:
        true, named = leak["true"], leak["named"]
        lines.append(f"- leak: {true['k_code']} {true['name'] or ''} ({_look(true)}) named "
                     f"{named['k_code']} {named['name'] or ''} ({_look(named)}) "
                     f"{leak['count']}x, confidence {leak['confidence_mean']:.2f}")
    framing = open_set.get("framing")
    if framing:
        lines.append(f"- framing: labelled boxes {_auroc(framing['labelled_boxes'])}; "
                     f"detector boxes {_auroc(framing['detector_boxes'])}; box IoU median "
                     f"{_num(framing['iou_median'])}, feature cosine median "
                     f"{_num(framing['feature_cosine_median'])}")
    for kind, sep in open_set.get("scores", {}).items():
        lines.append(f"- score {kind}: AUROC {sep['auroc']:.3f}, false accepts "
                     f"{sep['far_at_tar95']:.3f}")
    return lines


def _look(drug: dict[str, Any]) -> str:
    imprints = "/".join(i for i in drug["imprints"] if i) or "no imprint"
    parts = [drug.get("shape") or "?", "+".join(drug["colors"]) or "?", imprints]
    if drug.get("material"):
        parts.append(drug["material"])
    return ", ".join(parts)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _enrolled_lines(enrolled: dict[str, Any]) -> list[str]:
    lines = []
    for row in enrolled["shots"]:
        lines.append(f"- {row['photos']} photo(s) each, {row['drugs']} drugs: enrolled drugs "
                     f"named {row['top1']:.3f} (top-1 flagged or not {row['nearest']:.3f}) "
                     f"over {row['pills']} unseen photos; known top-1 "
                     f"{row['known_top1']:.3f} ({row['known_change']:+.3f} from before)")
    for skipped in enrolled.get("skipped", [])[:5]:
        lines.append(f"- not enrolled: {skipped}")
    return lines
