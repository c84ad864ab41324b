"""Benchmarks.

    python -m pillsnap.bench loader [--images 200] [--work DIR] [--json F]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    loader = sub.add_parser("loader", help="training input: PIL DataLoader vs PackLoader")
    loader.add_argument("--images", type=int, default=200)
    loader.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "pillsnap-bench-loader",
                        help="data is generated here once and reused")
    loader.add_argument("--json", type=Path, help="write the figures as JSON")
    loader.add_argument("--child", help=argparse.SUPPRESS)
    loader.add_argument("--cores", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from pillsnap.bench import loader as bench_loader

    if args.child:
        bench_loader.child_main(args.child, args.work, args.cores, args.images)
    else:
        bench_loader.main(args.work, args.images, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
