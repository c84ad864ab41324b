"""Export the trained models to ONNX with parity checks, into one folder a server can load.

    python -m pillsnap.export --ckpt runs/exp01/best.pt
    python -m pillsnap.export --ckpt runs/exp01/best.pt --det-ckpt runs/exp01/det/best.pt \\
        --out artifacts/export export.parity.samples=128
    python -m pillsnap.export --ckpt runs/exp01/best.pt --quantize int8   # + INT8 classifier

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

from pillsnap.config.cli import add_config_args, config_from_args, parse_args
from pillsnap.errors import PillsnapError
from pillsnap.logs import setup_logging

logger = logging.getLogger("pillsnap.export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, required=True, help="classifier best.pt")
    parser.add_argument("--det-ckpt", type=Path, default=None,
                        help="detector det/best.pt (adds the combo pipeline)")
    parser.add_argument("--out", type=Path, default=None,
                        help="export folder (default: export.out_dir)")
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
    args = parse_args(build_parser(), argv)
    try:
        cfg = config_from_args(args)
        setup_logging(cfg.logging.level)
        from pillsnap.export.run import export_all

        record = export_all(cfg, args.ckpt, args.out or Path(cfg.export.out_dir),
                            det_ckpt=args.det_ckpt, val_pack=args.val_pack,
                            det_data=args.det_data, manifest=args.manifest,
                            quantize=args.quantize)
    except PillsnapError as exc:
        logger.error("%s", exc)
        return 2
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
