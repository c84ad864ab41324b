"""Decode throughput on one thread: full decode vs decode + crop vs crop-before-decode.

Makes ``--count`` photo-like 480x629 JPEGs at quality 90 with Pillow (smooth gradients, soft
shapes, sensor-like noise; about the size of the packed AIHub images), then times, one
image after another on one thread:

  (a) native full decode                          the limit L of any full-decode loader
  (b) native full decode + crop + resize + flip   the FFCV recipe
  (c) native crop-before-decode + resize + flip   PillSnap's train path
  (d) native eval: decode window + resize         Resize(size/0.875) + CenterCrop(size)
  PIL rows for reference (decode; decode + RandomResizedCrop + flip).

Usage: PYTHONPATH=python python benchmarks/decode_bench.py [--count 200] [--size 384]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pillsnap import _native


def synthetic_photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A photo-like RGB image: lit background gradient, soft pill-like shapes, noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 200, size=3)
    tilt = rng.uniform(-0.15, 0.15, size=(2, 3))
    img = base + xx[..., None] * tilt[0] + yy[..., None] * tilt[1]
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(3, 8)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(20, 120), rng.uniform(20, 120)
        colour = tuple(int(c) for c in rng.uniform(0, 255, size=3))
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
        draw.line((cx - rx, cy, cx + rx, cy), fill=(30, 30, 30), width=3)
    canvas = canvas.filter(ImageFilter.GaussianBlur(1.2))
    noisy = np.asarray(canvas, dtype=np.float32) + rng.normal(0, 4.0, size=(height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def make_jpegs(count: int, quality: int = 90) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buf = io.BytesIO()
        synthetic_photo(rng, 480, 629).save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def rate(run: Callable[[int, bytes], object], jpegs: list[bytes], repeats: int) -> float:
    """Images per second: the best of `repeats` passes over all images (least disturbed)."""
    run(0, jpegs[0])  # warm-up: thread-local decoder, scratch buffers, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i, data in enumerate(jpegs):
            run(i, data)
        best = min(best, time.perf_counter() - start)
    return len(jpegs) / best


def pil_train(i: int, data: bytes, size: int) -> None:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    x, y, w, h, flip = _native.crop_params_train(img.width, img.height, size, 0, 0, i)
    img = img.resize((size, size), Image.BILINEAR, box=(x, y, x + w, y + h), reducing_gap=None)
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    np.asarray(img)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layout", choices=["hwc", "chw"], default="hwc")
    args = parser.parse_args()
    size, layout = args.size, args.layout

    jpegs = make_jpegs(args.count)
    full = np.empty((629, 480, 3), np.uint8)
    slot = np.empty(size * size * 3, np.uint8)

    cases: list[tuple[str, Callable[[int, bytes], object]]] = [
        ("(a) native full decode (limit L)", lambda i, d: _native.decode_full(d, full)),
        (
            f"(b) native full decode + crop + resize {size} + flip",
            lambda i, d: _native.decode_train_sample(d, size, 0, 0, i, slot, layout, True),
        ),
        (
            f"(c) native crop-before-decode + resize {size} + flip",
            lambda i, d: _native.decode_train_sample(d, size, 0, 0, i, slot, layout),
        ),
        (
            f"(d) native eval window decode + resize {size}",
            lambda i, d: _native.decode_eval_sample(d, size, slot, layout),
        ),
        ("PIL full decode", lambda i, d: Image.open(io.BytesIO(d)).convert("RGB").load()),
        (f"PIL decode + crop + resize {size} + flip", lambda i, d: pil_train(i, d, size)),
    ]
    mean_kb = sum(map(len, jpegs)) / len(jpegs) / 1024
    print(
        f"{len(jpegs)} JPEGs 480x629 q90, mean {mean_kb:.1f} KiB; one thread; layout {layout}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"
    )
    results = [(name, rate(run, jpegs, args.repeats)) for name, run in cases]
    limit = results[0][1]
    print(f"{'path':<52} {'images/s':>9} {'ms/image':>9} {'vs L':>6}")
    for name, ips in results:
        print(f"{name:<52} {ips:9.0f} {1000 / ips:9.3f} {ips / limit:6.2f}")


if __name__ == "__main__":
    main()
