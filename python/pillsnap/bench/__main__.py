"""Benchmarks.

    python -m pillsnap.bench loader [--images 200] [--work DIR] [--json F] [--size 384]
                                    [--methods A,B,C,F,L-native,L-pil,L-torchvision]
    python -m pillsnap.bench train [--images 6000] [--batch 128] [--modes none,default]
                                   [--window 20] [--profile] [--json F]
    python -m pillsnap.bench latency [--arch tf_efficientnetv2_s] [--size 384] [--json F]
    python -m pillsnap.bench serve --export DIR [--repository DIR] [--ckpt F] [--device D]
    python -m pillsnap.bench serve --standin DIR --device cuda      # GPU without ORT's CUDA
    python -m pillsnap.bench standin --out DIR [--arch yolo11m]     # writes that folder
                                   [--png F] [--json F]
    python -m pillsnap.bench api --model-path DIR | --repository DIR | --triton-url H:P
                                 | --url URL [--requests 2000] [--concurrency 32]
                                 [--pipeline single] [--json F] [serve.max_queue=N ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import get_args

from pillsnap.config.schema import Device, IoBinding


def _loader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) /
                   "pillsnap-bench-loader", help="data is generated here once and reused")
    p.add_argument("--size", type=int, default=384, help="RandomResizedCrop output size")
    p.add_argument("--methods", default="A,B,C,F,L-native,L-pil,L-torchvision",
                   help="comma-separated subset to run (a ratio needs C and its other method)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--cores", type=int, default=1, help=argparse.SUPPRESS)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=int, default=6000, help="photos in the train pack")
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--arch", default="tf_efficientnetv2_s")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--modes", default="none,default",
                   help="comma-separated train.compile modes to measure")
    p.add_argument("--resident-steps", type=int, default=40)
    p.add_argument("--epochs", type=int, default=2, help="loader epochs per mode")
    p.add_argument("--max-batch", type=int, default=1024,
                   help="the batch search's upper bound (0: skip the search)")
    p.add_argument("--threads", type=int, default=0, help="loader threads (0: autotune)")
    p.add_argument("--window", type=int, default=20,
                   help="steps per throughput window (bench/steps.py)")
    p.add_argument("--profile", action="store_true", help="profile a normal and the first "
                   "slow window of each mode (tables and traces under WORK/profiles)")
    p.add_argument("--work", type=Path,
                   default=Path(tempfile.gettempdir()) / "pillsnap-bench-train")


def _latency_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="tf_efficientnetv2_s")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--classes", type=int, default=5000)


def _serve_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--export", type=Path, help="an export folder")
    group.add_argument("--standin", type=Path, help="a folder from `bench standin`: the "
                       "in-process rows on PyTorch modules (a GPU whose ONNX Runtime has no "
                       "CUDA provider)")
    p.add_argument("--repository", type=Path, help="a Triton repository (adds Triton)")
    p.add_argument("--ckpt", type=Path, help="classifier best.pt for the PyTorch row")
    p.add_argument("--single", type=Path, help="a single-pill photo (default: synthetic)")
    p.add_argument("--combo", type=Path, help="a combination photo (default: synthetic)")
    p.add_argument("--png", type=Path, help="an AIHub PNG photo for the image-work rows "
                   "(default: the synthetic single-pill photo)")
    p.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    p.add_argument("--cfg", type=Path, help="config for targets.*, serve.max_pixels and "
                   "serve.device")
    p.add_argument("--device", choices=get_args(Device), help="where ONNX Runtime runs the "
                   "in-process rows (default: serve.device)")
    p.add_argument("--io-binding", choices=get_args(IoBinding), help="inputs and outputs "
                   "bound on the device for those rows (default: serve.io_binding)")


def _standin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="the folder to write")
    p.add_argument("--arch", default="yolo11m", help="the ultralytics detector to trace")
    p.add_argument("--size", type=int, default=640)


COMMANDS = {
    "loader": ("training input: PIL DataLoader vs PackLoader", _loader_args),
    "train": ("classifier training: PackLoader vs GPU-resident batches, eager vs compiled, "
              "max batch", _train_args),
    "latency": ("classifier batch-1 latency in PyTorch", _latency_args),
    "serve": ("latency and throughput: PyTorch, ONNX Runtime, in-process pipelines, Triton "
              "ensembles", _serve_args),
    "standin": ("the PyTorch stand-in's detector (TorchScript) for `serve --standin`",
                _standin_args),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (summary, add_args) in COMMANDS.items():
        p = sub.add_parser(name, help=summary)
        add_args(p)
        p.add_argument("--json", type=Path, help="write the figures as JSON")
    from pillsnap.bench import api as bench_api

    bench_api.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pillsnap.logs import setup_logging

    if args.command == "api":
        from pillsnap.bench import api as bench_api

        return bench_api.main(args)
    if args.command == "loader":
        from pillsnap.bench import loader as bench_loader

        if args.child:
            bench_loader.child_main(args.child, args.work, args.cores, args.images, args.size)
        else:
            bench_loader.main(args.work, args.images, args.json, args.size,
                              tuple(m for m in args.methods.split(",") if m))
    elif args.command == "train":
        from pillsnap.bench import train as bench_train

        setup_logging("INFO")
        bench_train.run(bench_train.Plan(
            work=args.work, images=args.images, classes=args.classes, batch=args.batch,
            arch=args.arch, size=args.size, modes=tuple(args.modes.split(",")),
            resident_steps=args.resident_steps, epochs=args.epochs, max_batch=args.max_batch,
            threads=args.threads, window=args.window, profile=args.profile), args.json)
    elif args.command == "latency":
        from pillsnap.bench import latency as bench_latency

        bench_latency.run(args.arch, args.size, args.classes, args.json)
    elif args.command == "serve":
        from pillsnap.bench import serve as bench_serve
        from pillsnap.config import load_config

        setup_logging("WARNING")
        cfg = load_config(args.cfg)
        bench_serve.run(args.export, cfg, repository=args.repository, ckpt=args.ckpt,
                        device=args.device or cfg.serve.device,
                        io_binding=args.io_binding or cfg.serve.io_binding,
                        samples=bench_serve.sample_photos(args.single, args.combo, args.png),
                        requests=args.requests, json_out=args.json, standin=args.standin)
    elif args.command == "standin":
        from pillsnap.bench import standin as bench_standin

        setup_logging("INFO")
        bench_standin.write_detector(args.out, arch=args.arch, size=args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
