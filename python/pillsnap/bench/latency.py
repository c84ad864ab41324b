"""Batch-1 latency of the classifier in PyTorch, with the spec's protocol.

    python -m pillsnap.bench latency [--arch tf_efficientnetv2_s] [--size 384]
                                     [--classes 5000] [--json F]

The spec's latency target (p95 <= 150 ms at batch 1 on the GPU) is measured as
``targets.measurement`` says: 20 warm-up runs, then 200 timed runs, one image each, each
run from a float32 image in host memory to the logits back in host memory (the copy both
ways included). Rows: fp32 and bf16 autocast (CUDA only), both channels_last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pillsnap.bench.machine import describe, describe_line
from pillsnap.bench.table import markdown_table
from pillsnap.config import load_config

# torch and timm are imported where used: the load generators (bench/load.py and
# bench/api.py) need percentiles(), not torch
if TYPE_CHECKING:
    import torch


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def interleaved(calls: Mapping[str, Callable[[], object]], warmup: int,
                runs: int) -> dict[str, list[float]]:
    """``time_runs`` of several calls taking turns, run by run, so a slow drift of the
    machine (another job, the clock) falls on all of them alike: the way to compare two
    paths on a shared machine."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(warmup + runs):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            if i >= warmup:
                samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def time_runs(call: Any, warmup: int, runs: int) -> list[float]:
    """Wall time of ``call()`` in ms, ``runs`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def classifier_latency(arch: str, size: int, classes: int, *, device: torch.device,
                       dtype: torch.dtype | None, warmup: int, runs: int) -> dict[str, float]:
    import timm
    import torch

    model = timm.create_model(arch, pretrained=False, num_classes=classes).eval().to(device)
    model = model.to(memory_format=torch.channels_last)
    image = torch.randn(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    if device.type == "cuda":
        image = image.pin_memory()

    @torch.inference_mode()
    def call() -> None:
        x = image.to(device, non_blocking=True)
        if dtype is None:
            logits = model(x)
        else:
            with torch.autocast(device.type, dtype=dtype):
                logits = model(x)
        logits.float().cpu()  # waits for the GPU: the answer is on the host

    return percentiles(time_runs(call, warmup, runs))


def run(arch: str, size: int, classes: int, json_out: Path | None) -> dict[str, Any]:
    import torch

    m = load_config(None, [], env_file=None, environ={}).targets.measurement
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    dtypes: dict[str, torch.dtype | None] = {"fp32": None}
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        dtypes["bf16"] = torch.bfloat16
    rows = {name: classifier_latency(arch, size, classes, device=device, dtype=dtype,
                                     warmup=m.warmup_runs, runs=m.runs)
            for name, dtype in dtypes.items()}
    result = {"machine": describe(), "arch": arch, "size": size, "classes": classes,
              "warmup_runs": m.warmup_runs, "runs": m.runs, "latency_ms": rows}
    print(f"machine: {describe_line()}")
    print(f"{arch} {size} px, {classes} classes, batch 1, {m.warmup_runs} warm-up + {m.runs} "
          "runs, host tensor in -> logits on the host\n")
    print(markdown_table([("precision", "p50 ms", "p95 ms", "p99 ms")] + [
        (name, f"{r['p50']:.2f}", f"{r['p95']:.2f}", f"{r['p99']:.2f}")
        for name, r in rows.items()]))
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
