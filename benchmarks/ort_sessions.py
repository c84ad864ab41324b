"""Two ONNX Runtime sessions taking turns, with and without their threads spinning.

The serving pipeline runs the detector, then the classifier, then the detector again for
the next photo: two sessions, each with a CPU thread pool of its own. ONNX Runtime's
threads busy-wait ("spin") after a run by default, so one session's idle threads compete
with the other's work. This times each model alone and taking turns, with spinning on
(ONNX Runtime's default, the baseline) and off (``pillsnap.infer.bundle.open_session``).

Usage: PYTHONPATH=python python benchmarks/ort_sessions.py --export artifacts/export [--runs 20]
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pillsnap.bench.machine import describe_line
from pillsnap.bench.table import markdown_table
from pillsnap.infer.bundle import open_session


def _median_ms(calls: list[Callable[[], object]], runs: int) -> list[float]:
    """Median ms of each call, the calls taking turns ``runs`` times (two untimed first)."""
    samples: list[list[float]] = [[] for _ in calls]
    for i in range(runs + 2):
        for call, times in zip(calls, samples, strict=True):
            started = time.perf_counter()
            call()
            if i >= 2:
                times.append((time.perf_counter() - started) * 1000)
    return [float(np.median(times)) for times in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = [("sessions", "detector alone ms", "detector in turns ms", "classifier alone ms",
             "classifier in turns ms")]
    found: dict[bool, list[float]] = {}
    for spinning in (True, False):
        det, det_info = open_session(args.export / "detector" / "model.onnx", spinning=spinning)
        cls, cls_info = open_session(args.export / "classifier" / "model.onnx",
                                     spinning=spinning)
        d = rng.random((1, 3, int(det_info["image_size"]), int(det_info["image_size"])),
                       dtype=np.float32)
        c = rng.random((1, 3, int(cls_info["image_size"]), int(cls_info["image_size"])),
                       dtype=np.float32)
        detect = functools.partial(det.run, ["output0"], {"images": d})
        classify = functools.partial(cls.run, ["logits"], {"images": c})
        (det_alone,) = _median_ms([detect], args.runs)
        (cls_alone,) = _median_ms([classify], args.runs)
        det_turns, cls_turns = _median_ms([detect, classify], args.runs)
        found[spinning] = [det_alone, det_turns, cls_alone, cls_turns]
        rows.append(("spinning (ONNX Runtime's default)" if spinning else "not spinning",
                     *(f"{v:.1f}" for v in found[spinning])))
    rows.append(("ratio, spinning / not", *(f"{a / b:.2f}x" for a, b in
                                            zip(found[True], found[False], strict=True))))
    print(f"machine: {describe_line()}; {args.runs} runs each, medians\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
