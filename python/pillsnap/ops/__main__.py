"""Operations commands.

    python -m pillsnap.ops release --export artifacts/export [--triton triton_models] \\
        [--config runs/exp01/config.yaml] [--version V] [--no-activate] [--root releases]
    python -m pillsnap.ops releases [--root releases]
    python -m pillsnap.ops activate VERSION [--root releases]
    python -m pillsnap.ops rollback [--to VERSION] [--root releases]
    python -m pillsnap.ops verify VERSION [--root releases]
    python -m pillsnap.ops backup [--runs runs] [--out backups] [--keep 5]
    python -m pillsnap.ops rotate-logs [--dir runs] [--max-mb 50] [--keep 7]

Exits 2 with one clear line when something is missing or a checksum fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pillsnap.cli import run_main
from pillsnap.errors import PillsnapError
from pillsnap.logs import setup_logging

logger = logging.getLogger("pillsnap.ops")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_root(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--root", type=Path, default=Path("releases"), help="releases folder")
        return p

    p = with_root(sub.add_parser("release", help="make (and activate) a model release"))
    p.add_argument("--export", type=Path, required=True, help="python -m pillsnap.export's "
                   "output folder")
    p.add_argument("--triton", type=Path, help="the Triton model repository to include")
    p.add_argument("--config", type=Path, help="the run's config.yaml to include")
    p.add_argument("--version", help="release name (default: vYYYYMMDD-HHMMSS)")
    p.add_argument("--no-activate", action="store_true", help="make it, keep serving the "
                   "current release")
    with_root(sub.add_parser("releases", help="list releases; * marks the active one"))
    p = with_root(sub.add_parser("activate", help="serve this release"))
    p.add_argument("version")
    p = with_root(sub.add_parser("rollback", help="serve the previously active release"))
    p.add_argument("--to", help="a specific release instead of the previous one")
    p = with_root(sub.add_parser("verify", help="check a release's checksums"))
    p.add_argument("version")
    p = sub.add_parser("backup", help="archive the run folders")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--out", type=Path, default=Path("backups"))
    p.add_argument("--keep", type=int, default=5, help="newest archives kept")
    p = sub.add_parser("rotate-logs", help="gzip-rotate *.log files over a size")
    p.add_argument("--dir", type=Path, default=Path("runs"))
    p.add_argument("--max-mb", type=float, default=50.0)
    p.add_argument("--keep", type=int, default=7, help="rotated copies kept per log (>= 1)")
    return parser


def run(args: argparse.Namespace) -> int:
    from pillsnap.ops import release

    if args.command == "release":
        path = release.make_release(args.root, args.export, version=args.version,
                                    triton=args.triton, config=args.config,
                                    activate=not args.no_activate)
        print(path)
    elif args.command == "releases":
        for r in release.list_releases(args.root):
            models = ", ".join(f"{k} {v}" for k, v in r["models"].items() if v)
            print(f"{'*' if r['active'] else ' '} {r['version']}  {r['created']}  {models}")
    elif args.command == "activate":
        release.activate_release(args.root, args.version)
    elif args.command == "rollback":
        print(release.rollback(args.root, args.to))
    elif args.command == "verify":
        from pillsnap.ops.checksums import verify_sums

        problems = verify_sums(args.root / args.version)
        if problems:
            raise release.ReleaseError(f"release {args.version}: " + "; ".join(problems))
        print(f"{args.version}: every file matches SHA256SUMS")
    elif args.command == "backup":
        from pillsnap.ops.backup import backup_runs

        print(backup_runs(args.runs, args.out, keep=args.keep))
    elif args.command == "rotate-logs":
        from pillsnap.ops.logrotate import rotate_logs

        if args.keep < 1:
            raise PillsnapError("--keep must be at least 1")
        rotated = rotate_logs(args.dir, max_bytes=int(args.max_mb * 2**20), keep=args.keep)
        print(json.dumps([str(p) for p in rotated]))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("INFO")
    return run_main(lambda: run(args), logger)


if __name__ == "__main__":
    sys.exit(main())
