"""The training and latency benchmarks run end to end (CPU, tiny model): they must not rot
between the GPU sessions that produce the figures in docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pillsnap.bench import latency, train


def test_train_bench_measures_resident_and_loader_epochs(tmp_path: Path) -> None:
    plan = train.Plan(work=tmp_path / "work", images=32, classes=4, batch=8,
                      arch="test_efficientnet", size=32, modes=("none",), resident_steps=3,
                      epochs=2, max_batch=64, threads=1)
    result = train.run(plan, tmp_path / "bench.json")

    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["modes"] == json.loads(json.dumps(result["modes"]))
    (mode,) = result["modes"]
    assert mode["resident"]["steps"] == 3
    assert [e["steps"] for e in mode["loader"]] == [4, 4]  # 32 photos / batch 8, drop_last
    assert all(0.0 <= e["data_share"] < 1.0 for e in mode["loader"])
    assert mode["ratio"] == mode["loader"][-1]["img_s"] / mode["resident"]["img_s"]
    assert result["max_batch"] == {}  # the batch search needs CUDA memory to measure


def test_latency_protocol_orders_percentiles() -> None:
    stats = latency.classifier_latency("test_efficientnet", 32, 5, device=torch.device("cpu"),
                                       dtype=None, warmup=2, runs=20)
    assert 0.0 < stats["p50"] <= stats["p95"] <= stats["p99"]
    assert latency.percentiles([1.0] * 19 + [100.0])["p50"] == 1.0
