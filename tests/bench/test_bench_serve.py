"""``python -m pillsnap.bench serve`` measures every serving path on a real export and a real
tritonserver (tiny models, few runs: the figures in docs/benchmarks.md come from full runs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pillsnap.bench import photo, serve
from pillsnap.config import load_config
from pillsnap.export.__main__ import main as export_main


def test_serve_bench_covers_every_path(exported: Path, trained: dict[str, Path],
                                       tmp_path: Path) -> None:
    repository = tmp_path / "triton_models"
    assert export_main(["--triton", "--from", str(exported), "--out", str(repository),
                        "triton.cpu_threads=1"]) == 0
    cfg = load_config(None, ["targets.measurement.warmup_runs=1",
                             "targets.measurement.runs=5"], env_file=None, environ={})
    out = tmp_path / "serve.json"
    result = serve.run(exported, cfg, repository=repository, ckpt=trained["ckpt"],
                       samples=serve.sample_photos(None, None), requests=8, json_out=out)

    assert json.loads(out.read_text())["latency_ms"] == json.loads(
        json.dumps(result["latency_ms"]))
    assert set(result["latency_ms"]) == {
        "PyTorch eager: classifier, one crop", "ONNX Runtime: classifier, one crop",
        "ONNX Runtime in-process: single pipeline", "ONNX Runtime in-process: combo pipeline",
        "ONNX Runtime in-process: single pipeline, Pillow photo path",
        "ONNX Runtime in-process: combo pipeline, Pillow photo path",
        "Triton HTTP: pill_single", "Triton HTTP: pill_combo"}
    for row in result["latency_ms"].values():
        assert 0 < row["p50"] <= row["p95"] <= row["p99"]
    # each answer split into its time inside ONNX Runtime and the rest
    assert result["device"] == "cpu" and result["io_binding"] == "off"
    for kind in ("single", "combo"):
        split = result["model_share"][kind]
        assert 0 < split["model_ms"] < split["answer_ms"]
        assert split["outside_ms"] == pytest.approx(split["answer_ms"] - split["model_ms"])
        assert 0 < split["outside_share"] < 1
    # the image work on both photo engines, side by side, JPEGs and the AIHub-format PNG
    work = result["image_work_ms"]
    assert list(work) == [label for label, _, _ in photo.CASES]
    for row in work.values():
        assert row["crops"] >= 1 and min(row["native"]["p50"], row["pillow"]["p50"]) > 0
    for ensemble in ("pill_single", "pill_combo"):
        levels = result["throughput"][ensemble]
        assert sorted(levels) == [1, 8, 32]
        for concurrency, stats in levels.items():
            assert stats["errors"] == 0 and stats["rps"] > 0
            assert stats["requests"] == max(8, 4 * concurrency)
