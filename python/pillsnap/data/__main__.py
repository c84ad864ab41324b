"""Dataset tools.

    python -m pillsnap.data synth --out data/synth --classes 12 --size 244x320
    python -m pillsnap.data scan  --root data/synth --out artifacts/manifest
    python -m pillsnap.data stage --stage 1 --manifest artifacts/manifest --out artifacts/stage1
    python -m pillsnap.data pack  --manifest artifacts/manifest --root data/synth --out packs
    python -m pillsnap.data yolo  --manifest artifacts/manifest --root data/synth --out yolo

Every command also takes ``--cfg config.yaml`` and dotted overrides (``data.scan_workers=8``);
explicit flags win over config values.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pillsnap.config.cli import add_config_args, parse_args, run_with_config
from pillsnap.config.paths import windows_path_hint
from pillsnap.config.schema import PillsnapConfig
from pillsnap.errors import PillsnapError
from pillsnap.logs import setup_logging

logger = logging.getLogger("pillsnap.data")


def _path(value: str) -> Path:
    hint = windows_path_hint(value)
    if hint:
        raise argparse.ArgumentTypeError(hint)
    return Path(value)


def _size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 976x1280, not {value!r}") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="generate a synthetic dataset in the AIHub format")
    synth.add_argument("--out", type=_path, required=True)
    synth.add_argument("--classes", type=int, default=12)
    synth.add_argument("--holdout-classes", type=int, default=0, metavar="N",
                       help="extra drugs drawn only into the validation split, never trained "
                            "on, to measure unknown-drug rejection (listed in "
                            "synth_holdout.json)")
    synth.add_argument("--holdout-train-per-class", type=int, default=0, metavar="N",
                       help="also N training photos of each held-out drug (to enroll it "
                            "from); train with data.exclude_k_codes listing them")
    synth.add_argument("--train-per-class", type=int, default=20)
    synth.add_argument("--val-per-class", type=int, default=6)
    synth.add_argument("--combo-train", type=int, default=10)
    synth.add_argument("--combo-val", type=int, default=4)
    synth.add_argument("--size", type=_size, default=(976, 1280),
                       help="WIDTHxHEIGHT (AIHub: 976x1280)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=1)

    scan = sub.add_parser("scan", help="scan an extracted AIHub tree into a manifest")
    scan.add_argument("--root", type=_path, help="dataset root (default: data.root)")
    scan.add_argument("--out", type=_path, help="manifest directory (default: data.manifest_dir)")
    scan.add_argument("--workers", type=int, help="parallel workers (default: data.scan_workers)")
    scan.add_argument("--rebuild-classes", action="store_true",
                      help="build a fresh class index instead of extending an existing one")

    stage = sub.add_parser("stage", help="sample a progressive training subset (stage 1-4)")
    stage.add_argument("--stage", type=int, choices=[1, 2, 3, 4])
    stage.add_argument("--manifest", type=_path,
                       help="manifest directory (default: data.manifest_dir)")
    stage.add_argument("--out", type=_path, required=True)
    stage.add_argument("--seed", type=int, help="default: data.stage_seed")
    stage.add_argument("--images", type=int, help="override the stage's image count")
    stage.add_argument("--classes", type=int, help="override the stage's class count")

    pack = sub.add_parser("pack", help="pack a manifest into memory-mapped training files")
    pack.add_argument("--manifest", type=_path,
                      help="manifest directory (default: data.manifest_dir)")
    pack.add_argument("--root", type=_path, help="dataset root (default: data.root)")
    pack.add_argument("--out", type=_path, help="pack directory (default: pack.out_dir)")
    pack.add_argument("--split", choices=["train", "val"], action="append",
                      help="repeatable (default: both)")
    pack.add_argument("--no-resume", action="store_true", help="start over instead of resuming")
    pack.add_argument("--no-yolo", action="store_true",
                      help="skip the detector's YOLO view (written to OUT/yolo otherwise)")

    yolo = sub.add_parser("yolo", help="write the detector's YOLO-format view of the manifest")
    yolo.add_argument("--manifest", type=_path,
                      help="manifest directory (default: data.manifest_dir)")
    yolo.add_argument("--root", type=_path, help="dataset root (default: data.root)")
    yolo.add_argument("--out", type=_path, required=True)
    yolo.add_argument("--include-single", action="store_true", default=None,
                      help="also single-pill photos (default: train.det.include_single)")
    yolo.add_argument("--workers", type=int, default=0)

    for command in (synth, scan, stage, pack, yolo):
        add_config_args(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    return run_with_config(args, lambda cfg: COMMANDS[args.command](args, cfg), logger,
                           catch=(PillsnapError, FileExistsError, ValueError))


def run_synth(args: argparse.Namespace, cfg: PillsnapConfig) -> int:
    from pillsnap.data.synth import SynthSpec, generate

    spec = SynthSpec(classes=args.classes, holdout_classes=args.holdout_classes,
                     holdout_train_per_class=args.holdout_train_per_class,
                     train_per_class=args.train_per_class,
                     val_per_class=args.val_per_class, combo_train=args.combo_train,
                     combo_val=args.combo_val, width=args.size[0], height=args.size[1],
                     seed=args.seed)
    summary = generate(args.out, spec, workers=args.workers)
    print(json.dumps(summary.to_dict(), ensure_ascii=False))
    return 0


def run_scan(args: argparse.Namespace, cfg: PillsnapConfig) -> int:
    from pillsnap.data.scan import scan, summary_lines

    root = args.root or cfg.data.root
    out = args.out or cfg.data.manifest_dir
    setup_logging(cfg.logging.level, Path(out) / "scan.log")
    workers = cfg.data.scan_workers if args.workers is None else args.workers
    result = scan(root, out, workers=workers, verify_images=cfg.data.verify_images,
                  rebuild_classes=args.rebuild_classes)
    for line in summary_lines(result.report):
        print(line)
    print(f"manifest written to {out}")
    return 0


def run_stage(args: argparse.Namespace, cfg: PillsnapConfig) -> int:
    from pillsnap.data.classes import training_classes
    from pillsnap.data.stage import make_stage

    if args.stage is None and (args.images is None or args.classes is None):
        raise ValueError("give --stage 1..4, or both --images and --classes")
    seed = cfg.data.stage_seed if args.seed is None else args.seed
    manifest = args.manifest or cfg.data.manifest_dir
    report = make_stage(manifest, args.out, stage=args.stage, seed=seed, images=args.images,
                        n_classes=args.classes, classes=training_classes(cfg, Path(manifest)))
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


def run_pack(args: argparse.Namespace, cfg: PillsnapConfig) -> int:
    from pillsnap.config.features import includes
    from pillsnap.data.classes import training_classes
    from pillsnap.data.pack import build_pack

    manifest = args.manifest or cfg.data.manifest_dir
    root, out = args.root or cfg.data.root, args.out or cfg.pack.out_dir
    setup_logging(cfg.logging.level, Path(out) / "pack.log")
    p = cfg.pack
    classes = training_classes(cfg, Path(manifest))
    for split in args.split or ["train", "val"]:
        report = build_pack(manifest, root, Path(out) / f"{split}.pack", split=split,
                            short_side=p.short_side, quality=p.jpeg_quality, storage=p.storage,
                            region=p.region, margin=p.pill_margin, workers=p.workers,
                            resume=not args.no_resume, classes=classes)
        print(f"{split}: {report['records']} records, {report['mb_per_1000']} MB per 1,000, "
              f"{report['skipped_unreadable']} unreadable skipped, "
              f"{report['unknown_class_pills']} pills outside the class index left out, "
              f"{report['seconds']} s -> {report['pack']}")
    if not args.no_yolo and includes(cfg.active_feature_set, "advanced"):
        from pillsnap.data.yolo_view import write_yolo_view

        view = write_yolo_view(manifest, root, Path(out) / "yolo",
                               image_size=cfg.models.detector.image_size,
                               include_single=cfg.train.det.include_single, workers=p.workers)
        print(f"yolo view: {view['images']} images -> {Path(out) / 'yolo'}")
    return 0


def run_yolo(args: argparse.Namespace, cfg: PillsnapConfig) -> int:
    from pillsnap.config.features import require

    require(cfg, "advanced", "the detector's YOLO view")
    from pillsnap.data.yolo_view import write_yolo_view

    include = cfg.train.det.include_single if args.include_single is None else True
    report = write_yolo_view(args.manifest or cfg.data.manifest_dir, args.root or cfg.data.root,
                             args.out, image_size=cfg.models.detector.image_size,
                             include_single=include, workers=args.workers)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


COMMANDS = {"synth": run_synth, "scan": run_scan, "stage": run_stage, "pack": run_pack,
            "yolo": run_yolo}

if __name__ == "__main__":
    sys.exit(main())
