"""Benchmarks.

    python -m pillsnap.bench loader [--images 200] [--work DIR] [--json F]
    python -m pillsnap.bench train [--images 6000] [--batch 128] [--modes none,default] [--json F]
    python -m pillsnap.bench latency [--arch tf_efficientnetv2_s] [--size 384] [--json F]
    python -m pillsnap.bench api --model-path DIR | --url URL [--requests 2000]
                                 [--concurrency 32] [--pipeline single] [--json F]
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
    train = sub.add_parser("train", help="classifier training: PackLoader vs GPU-resident "
                           "batches, eager vs compiled, max batch")
    train.add_argument("--images", type=int, default=6000, help="photos in the train pack")
    train.add_argument("--classes", type=int, default=100)
    train.add_argument("--batch", type=int, default=128)
    train.add_argument("--arch", default="tf_efficientnetv2_s")
    train.add_argument("--size", type=int, default=384)
    train.add_argument("--modes", default="none,default",
                       help="comma-separated train.compile modes to measure")
    train.add_argument("--resident-steps", type=int, default=40)
    train.add_argument("--epochs", type=int, default=2, help="loader epochs per mode")
    train.add_argument("--max-batch", type=int, default=1024,
                       help="the batch search's upper bound (0: skip the search)")
    train.add_argument("--threads", type=int, default=0, help="loader threads (0: autotune)")
    train.add_argument("--work", type=Path,
                       default=Path(tempfile.gettempdir()) / "pillsnap-bench-train")
    train.add_argument("--json", type=Path, help="write the figures as JSON")
    latency = sub.add_parser("latency", help="classifier batch-1 latency in PyTorch")
    latency.add_argument("--arch", default="tf_efficientnetv2_s")
    latency.add_argument("--size", type=int, default=384)
    latency.add_argument("--classes", type=int, default=5000)
    latency.add_argument("--json", type=Path, help="write the figures as JSON")
    from pillsnap.bench import api as bench_api

    bench_api.add_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "api":
        return bench_api.main(args)
    if args.command == "latency":
        from pillsnap.bench import latency as bench_latency

        bench_latency.run(args.arch, args.size, args.classes, args.json)
        return 0
    if args.command == "train":
        from pillsnap.bench import train as bench_train
        from pillsnap.logs import setup_logging

        setup_logging("INFO")
        bench_train.run(bench_train.Plan(
            work=args.work, images=args.images, classes=args.classes, batch=args.batch,
            arch=args.arch, size=args.size, modes=tuple(args.modes.split(",")),
            resident_steps=args.resident_steps, epochs=args.epochs, max_batch=args.max_batch,
            threads=args.threads), args.json)
        return 0

    from pillsnap.bench import loader as bench_loader

    if args.child:
        bench_loader.child_main(args.child, args.work, args.cores, args.images)
    else:
        bench_loader.main(args.work, args.images, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
