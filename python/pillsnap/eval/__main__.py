"""Judge the served answers as users will: every photo of a split through ``/predict``'s code.

    python -m pillsnap.eval --cfg configs/rtx5080-wsl.yaml                      # export.out_dir
    python -m pillsnap.eval --cfg demo_run/config.yaml --export demo_run/export --limit 200
    python -m pillsnap.eval --cfg F --triton-url 127.0.0.1:8100                 # through Triton
    python -m pillsnap.eval --cfg F --export DIR --triton-url 127.0.0.1:8100    # both + agreement
    python -m pillsnap.eval --cfg F --export DIR --enroll 1,5,10   # + drugs enrolled from N photos

Photos and their labels come from the scan's manifest (``data.manifest_dir``; split ``val``
is the official VS/VL validation set) under ``data.root``. Single-pill photos go through the
single pipeline, combination photos through combo. Writes ``eval_report.json``,
``eval_summary.md`` and PNG plots (risk-coverage, reliability, open-set scores) into
``--out`` (default ``run.out_dir/run.name/eval``; one subfolder per backend when both are
given) and prints the summary with PASS/FAIL lines for ``targets.*``. A photo that fails is
counted and listed; it never stops the run. What each figure counts: ``pillsnap.eval.report``;
unknown drugs: ``pillsnap.eval.open_set``; ``--enroll``: ``pillsnap.eval.enrolled``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pillsnap.config import PillsnapConfig
from pillsnap.config.cli import add_config_args, parse_args, run_with_config
from pillsnap.errors import ModelError

logger = logging.getLogger("pillsnap.eval")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, default=None,
                        help="export folder served in-process (default: export.out_dir, "
                        "unless --triton-url alone)")
    parser.add_argument("--triton-url", default=None,
                        help="host:port of a Triton serving the repository (HTTP)")
    parser.add_argument("--split", default="val", help="manifest split (default: val)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: run.out_dir/run.name/eval)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also the report's path (default: OUT/eval_report.json)")
    parser.add_argument("--limit", type=int, default=None, help="the first N photos only")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--enroll", type=_counts, default=None, metavar="N,N,...",
                        help="also enroll the drugs outside the class index from N of their "
                        "training photos each (in a copy of --export) and measure them")
    add_config_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)

    def run(cfg: PillsnapConfig) -> int:
        from pillsnap.eval.output import summary_text

        reports = evaluate(cfg, export=args.export, triton_url=args.triton_url,
                           split=args.split, out=args.out, json_path=args.json,
                           limit=args.limit, top_k=args.top_k, enroll=args.enroll)
        for report in reports.values():
            print(summary_text(report))
        return 0

    return run_with_config(args, run, logger)


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: photo counts such as 1,5,10") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: photo counts of at least 1")
    return counts


def evaluate(cfg: PillsnapConfig, *, export: Path | None = None, triton_url: str | None = None,
             split: str = "val", out: Path | None = None, json_path: Path | None = None,
             limit: int | None = None, top_k: int = 5, progress: bool | None = None,
             enroll: tuple[int, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Evaluate each backend given (the export folder when neither); reports by backend.
    ``enroll``: photo counts for ``pillsnap.eval.enrolled`` (the export's backend only)."""
    from pillsnap.data.drugs import load_drugs
    from pillsnap.data.synth import load_holdout
    from pillsnap.eval.collect import EmbeddedRunner, Runner, TritonRunner, collect
    from pillsnap.eval.open_set import lookalikes
    from pillsnap.eval.output import agreement, write_outputs
    from pillsnap.eval.report import build_report, enrolled_targets
    from pillsnap.eval.samples import load_samples

    if export is None and triton_url is None:
        export = Path(cfg.export.out_dir)
    runners: list[Runner] = []
    try:
        if export is not None:
            runners.append(EmbeddedRunner(export, threads=cfg.serve.threads,
                                          max_pixels=cfg.serve.max_pixels))
        if triton_url is not None:
            runners.append(TritonRunner(triton_url, timeout_s=max(cfg.serve.request_timeout_s,
                                                                  30.0)))
        k_codes, served_open_set = _served_classes(cfg, export)
        manifest = Path(cfg.data.manifest_dir)
        drugs = load_drugs(manifest) if (manifest / "drugs.json").is_file() else {}
        twins = {**lookalikes(drugs, set(k_codes)),
                 **{k: v for k, v in load_holdout(Path(cfg.data.root)).items() if v}}
        samples = load_samples(manifest, Path(cfg.data.root), split, known=set(k_codes),
                               limit=limit, twins=twins)
        logger.info("eval: %d %s photos, %d known classes, backends: %s", len(samples), split,
                    len(k_codes), ", ".join(r.name for r in runners))
        served = {r.name: collect(samples, r, top_k=top_k, progress=progress) for r in runners}
    finally:
        for runner in runners:
            runner.close()
    enrolled = None
    if enroll and export is not None:
        from pillsnap.eval.enrolled import enrolled_report

        enrolled = enrolled_report(cfg, export, samples, shots=enroll)
    base = out or Path(cfg.run.out_dir) / cfg.run.name / "eval"
    reports = {}
    for name, answers in served.items():
        report = build_report(answers, backend=name, low_confidence=cfg.serve.low_confidence,
                              targets=cfg.targets, top_k=top_k, drugs=drugs)
        report["split"] = split
        report["open_set"]["served"] = served_open_set
        if enrolled is not None and name == "embedded":
            report["enrolled"] = enrolled
            report["targets"] += enrolled_targets(enrolled, cfg.targets)
        if len(served) == 2:
            report["agreement"] = agreement(*served.values())
        folder = base / name if len(served) == 2 else base
        paths = write_outputs(report, answers, folder, json_path if len(served) == 1 else None)
        logger.info("eval (%s): %s", name, ", ".join(str(p) for p in paths.values() if p))
        reports[name] = report
    return reports


def _served_classes(cfg: PillsnapConfig,
                    export: Path | None) -> tuple[tuple[str, ...], dict[str, Any] | None]:
    """The drugs the server knows (the classifier's classes and the drugs enrolled since) and
    its open-set rule: the export's recipe and gallery, else the Triton repository's copies
    (``postprocess/<version>/``)."""
    from dataclasses import asdict

    from pillsnap.contract.gallery import GALLERY_FILE, Gallery, GalleryError
    from pillsnap.contract.recipe import RECIPE_FILE, Recipe, RecipeError
    from pillsnap.infer.bundle import read_recipe

    if export is not None:
        recipe, folder = read_recipe(export), export
    else:
        folder = Path(cfg.triton.repository) / "postprocess" / cfg.triton.model_version
        try:
            recipe = Recipe.from_json((folder / RECIPE_FILE).read_text(encoding="utf-8"),
                                      str(folder / RECIPE_FILE))
        except (OSError, RecipeError) as exc:
            raise ModelError(f"cannot read the served recipe in {folder} (triton.repository): "
                             f"{exc}; pass --export") from None
    enrolled: tuple[str, ...] = ()
    if (folder / GALLERY_FILE).is_file():
        try:
            enrolled = Gallery.load(folder / GALLERY_FILE).enrolled_codes
        except GalleryError as exc:
            raise ModelError(str(exc)) from None
    rule = recipe.open_set
    return recipe.k_codes + enrolled, None if rule is None else asdict(rule)


if __name__ == "__main__":
    sys.exit(main())
