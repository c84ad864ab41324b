"""Export the trained models to ONNX with parity checks, into one folder a server can load.

    python -m pillsnap.export --ckpt runs/exp01/best.pt
    python -m pillsnap.export --ckpt runs/exp01/best.pt --det-ckpt runs/exp01/det/best.pt \\
        --out artifacts/export export.parity.samples=128
    python -m pillsnap.export --ckpt runs/exp01/best.pt --quantize int8   # + INT8 classifier
    python -m pillsnap.export --triton [--from artifacts/export] [--out triton_models]
    python -m pillsnap.export --ckpt runs/exp01/best.pt --det-ckpt ... --triton

``--triton`` writes the Triton model repository (``triton.*`` settings; default ``--out``
``triton.repository``) from the export folder ``--from`` (default ``export.out_dir``); with
``--ckpt`` too, it exports into that folder first. Layout and contract: docs/triton.md.

Training settings (pack folder, crop margin, image size) come from the checkpoint; export
settings (``export.*``: opset, parity tolerances, default ``--out``) from ``--cfg`` and
overrides. Exits 2 with one clear line when a file is missing or a parity check fails (the
numbers are in ``parity_report.json`` next to the model).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pillsnap.config import PillsnapConfig
from pillsnap.config.cli import add_config_args, parse_args, run_with_config

logger = logging.getLogger("pillsnap.export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None,
                        help="classifier best.pt (required unless --triton)")
    parser.add_argument("--det-ckpt", type=Path, default=None,
                        help="detector det/best.pt (adds the combo pipeline)")
    parser.add_argument("--out", type=Path, default=None,
                        help="export folder (default: export.out_dir); with --triton the "
                        "model repository (default: triton.repository)")
    parser.add_argument("--triton", action="store_true",
                        help="write the Triton model repository from an export folder")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="with --triton: the export folder to read (default: "
                        "export.out_dir)")
    parser.add_argument("--val-pack", type=Path, default=None,
                        help="val.pack for classifier parity (default: the run's pack.out_dir)")
    parser.add_argument("--det-data", type=Path, default=None,
                        help="YOLO data.yaml for detector parity (default: the run's dataset)")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="folder with drugs.json (default: the run's data.manifest_dir)")
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="also write classifier/model.int8.onnx (static quantization "
                        "calibrated on the train pack) with int8_report.json")
    add_config_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.ckpt is None and not args.triton:
        parser.error("--ckpt is required (or --triton to build a repository from an export)")

    def export(cfg: PillsnapConfig) -> int:
        print(json.dumps(_run(cfg, args), indent=2, ensure_ascii=False))
        return 0

    return run_with_config(args, export, logger)


def _run(cfg: PillsnapConfig, args: argparse.Namespace) -> dict[str, Any]:
    export_dir = (args.source or Path(cfg.export.out_dir)) if args.triton else \
        (args.out or Path(cfg.export.out_dir))
    record = None
    if args.ckpt is not None:
        from pillsnap.export.run import export_all

        record = export_all(cfg, args.ckpt, export_dir, det_ckpt=args.det_ckpt,
                            val_pack=args.val_pack, det_data=args.det_data,
                            manifest=args.manifest, quantize=args.quantize)
    if not args.triton:
        return record or {}
    from pillsnap.export.triton.repository import write_repository

    return write_repository(export_dir, args.out or Path(cfg.triton.repository), cfg.triton,
                            cfg.serve)


if __name__ == "__main__":
    sys.exit(main())
