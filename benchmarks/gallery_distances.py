"""What the open-set score costs each served crop now that it is computed beside the graph.

    python benchmarks/gallery_distances.py [--classes 5000] [--dim 1280] [--runs 50]

The served score is ``Gallery.distances`` (``pillsnap.contract.gallery``): whitening the
crop's pooled features, then squared distances to every class mean, in float64 so that a pill
near the threshold cannot flip with its batch's BLAS kernel. Baseline, in the same run: the
same arithmetic in float32 (what the score cost when it was a second output of the ONNX
graph, in float32). Sizes: EfficientNetV2-S's 1,280 features and the spec's 5,000 classes
by default; batch 1 (a single-pill answer), 4 (a combination photo) and 32 (the classifier's
max batch). Prints a table with the machine, the medians and the ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pillsnap.bench.machine import describe_line
from pillsnap.contract.gallery import Gallery


def _median_ms(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    d, classes = args.dim, args.classes
    a = rng.normal(0, 1, (d, d))
    precision = np.linalg.inv(a @ a.T / d + np.eye(d))
    gallery = Gallery.from_statistics([f"K-{i:06d}" for i in range(classes)],
                                      rng.normal(0, 1, (classes, d)), precision,
                                      np.full(classes, 300))
    w32, m32 = gallery.whiten.astype(np.float32), gallery.means.astype(np.float32)
    sq32 = (m32 ** 2).sum(1)

    def float32(f: np.ndarray) -> np.ndarray:
        g = f.astype(np.float32) @ w32
        return (g ** 2).sum(1)[:, None] - 2 * g @ m32.T + sq32[None, :]

    print(f"machine: {describe_line()}; numpy {np.__version__}; {classes} classes x {d} "
          f"features, median of {args.runs} runs")
    print("| crops | float32 ms (baseline) | served float64 ms | ratio |")
    print("|---|---|---|---|")
    for batch in (1, 4, 32):
        features = rng.normal(0, 1, (batch, d)).astype(np.float32)
        gallery.distances(features)  # warm
        base = _median_ms(lambda f=features: float32(f), args.runs)
        served = _median_ms(lambda f=features: gallery.distances(f), args.runs)
        print(f"| {batch} | {base:.2f} | {served:.2f} | {served / base:.2f}x |")


if __name__ == "__main__":
    main()
