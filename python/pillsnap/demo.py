"""PillSnap's main job end to end on small generated data, each stage timed.

    python -m pillsnap.demo [--out demo_run] [--classes 12] [--size 488x640]

Stages so far: generate a synthetic dataset in the AIHub format, scan it into a manifest,
pack both splits (pill crops as JPEG) and the detector's YOLO view, and read one training
epoch through PackLoader. Training, export, serving and a real /predict join as they are
built.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pillsnap.config.paths import windows_path_hint
from pillsnap.errors import PillsnapError
from pillsnap.logs import setup_logging

logger = logging.getLogger("pillsnap.demo")


def _stage(name: str, timings: list[tuple[str, float]], fn: Callable[[], Any]) -> Any:
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    result = fn()
    timings.append((name, time.perf_counter() - started))
    print(f"   done in {timings[-1][1]:.1f} s", flush=True)
    return result


def run(out: Path, classes: int, size: tuple[int, int], seed: int, workers: int) -> int:
    from pillsnap.data.pack import build_pack
    from pillsnap.data.scan import scan, summary_lines
    from pillsnap.data.synth import SynthSpec, generate
    from pillsnap.data.yolo_view import write_yolo_view

    if out.exists():
        shutil.rmtree(out)  # the demo folder is the demo's own: start clean every time
    dataset, manifest = out / "dataset", out / "manifest"
    timings: list[tuple[str, float]] = []
    spec = SynthSpec(classes=classes, width=size[0], height=size[1], seed=seed)
    summary = _stage("synthetic AIHub dataset", timings,
                     lambda: generate(dataset, spec, workers=workers))
    print(f"   {summary.images} images, {summary.pills} pills, {summary.classes} classes "
          f"-> {dataset}")
    result = _stage("scan -> manifest", timings,
                    lambda: scan(dataset, manifest, workers=workers))
    for line in summary_lines(result.report):
        print(f"   {line}")
    print(f"   manifest, classes.json, drugs.json, scan_report.json -> {manifest}")
    packs = out / "packs"
    for split in ("train", "val"):
        report = _stage(f"pack {split} (pill crops, JPEG)", timings, lambda s=split: build_pack(
            manifest, dataset, packs / f"{s}.pack", split=s, short_side=192, workers=workers))
        print(f"   {report['records']} records, {report['mb_per_1000']} MB per 1,000 "
              f"-> {report['pack']}")
    view = _stage("YOLO view for the detector", timings, lambda: write_yolo_view(
        manifest, dataset, packs / "yolo", image_size=320, workers=workers))
    print(f"   combination photos: {view['images']} -> {packs / 'yolo'}")
    rate = _stage("PackLoader: one training epoch at 160 px", timings,
                  lambda: _loader_epoch(packs / "train.pack", workers))
    print(f"   {rate:.0f} images/s on {workers} threads (decode, crop, resize, flip)")
    print("== stage times: " + ", ".join(f"{n} {t:.1f} s" for n, t in timings))
    return 0


def _loader_epoch(pack: Path, threads: int) -> float:
    from pillsnap.data.autotune import measure
    from pillsnap.data.loader import PackLoader

    loader = PackLoader(pack, batch_size=32, image_size=160, threads=threads)
    return measure(loader, batches=len(loader))


def _size(value: str) -> tuple[int, int]:
    width, height = (int(v) for v in value.lower().split("x"))
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_run"))
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--size", type=_size, default=(488, 640), help="photo WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    hint = windows_path_hint(str(args.out))
    if hint:
        parser.error(hint)
    setup_logging("WARNING")
    try:
        return run(args.out, args.classes, args.size, args.seed, args.workers)
    except PillsnapError as exc:
        logger.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
