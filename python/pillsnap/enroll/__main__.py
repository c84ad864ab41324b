"""Enroll a new drug into a served model from a few photos, or remove one, roll back, list.

    python -m pillsnap.enroll --export artifacts/export --k-code K-012345 a.jpg b.jpg c.jpg
    python -m pillsnap.enroll --export DIR --triton-repo triton_models --k-code K-012345 \\
        --drugs artifacts/manifest/drugs.json photos/*.jpg
    python -m pillsnap.enroll --export DIR --k-code K-012345 --name-ko 새약정 --edi 641234567 *.jpg
    python -m pillsnap.enroll --export DIR --remove K-012345 [--triton-repo triton_models]
    python -m pillsnap.enroll --export DIR --rollback [--triton-repo triton_models]
    python -m pillsnap.enroll --export DIR --list
    python -m pillsnap.enroll --export DIR --k-code K-012345 --skip-unusable photos/*.jpg
    python -m pillsnap.enroll --export NEW --from-export OLD    # a retrained model

The drug's names and EDI codes come from its drug-table entry (``--drugs``, default
``enroll.drugs``, else the scan's ``data.manifest_dir/drugs.json``), or from ``--name-ko``,
``--name-en`` and ``--edi``, which also override the table's. Prints a JSON report; exits 2
with one line, and changes nothing, when an input is wrong (too few photos, a photo with no
pill or several, a K-code already known, a damaged photo, another enrollment running).
What happens and why: ``pillsnap.enroll``.
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

logger = logging.getLogger("pillsnap.enroll")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.enroll", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, default=None,
                        help="the export folder served (default: serve.model_path, else "
                        "export.out_dir)")
    parser.add_argument("--triton-repo", type=Path, default=None,
                        help="also update this Triton repository's copy (postprocess)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--k-code", help="enroll this drug from PHOTOS")
    what.add_argument("--remove", metavar="K-CODE", help="remove an enrolled drug")
    what.add_argument("--rollback", action="store_true",
                      help="restore the gallery the current one was made from")
    what.add_argument("--list", action="store_true", help="the enrolled drugs and versions")
    what.add_argument("--from-export", type=Path, metavar="OLD",
                      help="enroll every drug OLD had enrolled, from the photos it kept")
    parser.add_argument("photos", nargs="*", type=Path, metavar="PHOTO",
                        help="single-pill photos of the drug (JPEG, PNG, WebP)")
    parser.add_argument("--drugs", type=Path, default=None,
                        help="drug table (drugs.json) with the drug's entry")
    parser.add_argument("--name-ko", default=None)
    parser.add_argument("--name-en", default=None)
    parser.add_argument("--edi", action="append", default=[],
                        help="an EDI code (repeat for several)")
    parser.add_argument("--skip-unusable", action="store_true",
                        help="leave out photos in which the detector finds no pill or several "
                        "(said in the report) instead of refusing, while enroll.min_photos "
                        "are left")
    add_config_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.photos and not args.k_code:
        parser.error("photos go with --k-code")

    def run(cfg: PillsnapConfig) -> int:
        print(json.dumps(_run(cfg, args), indent=2, ensure_ascii=False))
        return 0

    return run_with_config(args, run, logger)


def _run(cfg: PillsnapConfig, args: argparse.Namespace) -> Any:
    from pillsnap.enroll import actions

    export = args.export or Path(cfg.serve.model_path or cfg.export.out_dir)
    if args.list:
        return actions.listing(export)
    if args.remove:
        return actions.remove_drug(export, args.remove, args.triton_repo)
    if args.rollback:
        return actions.rollback(export, args.triton_repo)
    if args.from_export:
        return actions.from_export(cfg, export, args.from_export, args.triton_repo)
    return actions.add_drug(cfg, export, k_code=args.k_code, photos=args.photos,
                            drug=_drug_entry(cfg, args), repository=args.triton_repo,
                            skip_unusable=args.skip_unusable)


def _drug_entry(cfg: PillsnapConfig, args: argparse.Namespace) -> dict[str, Any]:
    """The drug-table entry of ``--k-code`` with the command line's names and EDI codes over
    it ({} where the table lacks it: the names must then come from the command line)."""
    from pillsnap.data.drugs import load_drugs
    from pillsnap.errors import DataError

    path = args.drugs or (Path(cfg.enroll.drugs) if cfg.enroll.drugs else
                          Path(cfg.data.manifest_dir) / "drugs.json")
    entry: dict[str, Any] = {}
    if path.exists():
        try:
            entry = dict(load_drugs(path).get(args.k_code, {}))
        except DataError as exc:
            if args.drugs is not None:
                raise
            logger.warning("drug table %s unreadable (%s): names from the command line only",
                           path, exc)
    elif args.drugs is not None:
        raise DataError(f"no drug table at {path}")
    entry.pop("k_code", None)
    if args.name_ko:
        entry["name_ko"] = args.name_ko
    if args.name_en:
        entry["name_en"] = args.name_en
    if args.edi:
        codes = [c.strip() for value in args.edi for c in value.split(",") if c.strip()]
        entry["edi_codes"], entry["edi_code"] = codes, codes[0] if codes else None
    return entry


if __name__ == "__main__":
    sys.exit(main())
