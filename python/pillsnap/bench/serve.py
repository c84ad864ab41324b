"""Serving latency and throughput with the spec's protocol, every path on one machine.

    python -m pillsnap.bench serve --export artifacts/export [--repository triton_models]
                                   [--ckpt runs/exp01/best.pt] [--device cuda] [--png F]
                                   [--json F]

Latency (``targets.measurement``: batch 1, 20 warm-up runs, 200 timed): the classifier
alone on one crop in PyTorch eager (with ``--ckpt``, default: the checkpoint export.json
names, when it is still there) and in ONNX Runtime; the whole in-process pipelines
(``OnnxPipeline``: JPEG bytes in, answer out) single and combo, on the Rust photo engine
and, taking turns with it run by run, on the Pillow path; each answer split into its time
inside ONNX Runtime and the rest (on a GPU, the CPU's share); and, with
``--repository``, the Triton ensembles ``pill_single`` and ``pill_combo`` over HTTP on a
tritonserver started here (CPU configs). Throughput of the Triton ensembles at concurrency
1, 8 and 32 comes from a closed-loop client (``bench/load.py``, perf_analyzer's
concurrency mode). The photos are synthetic AIHub-size (976x1280) JPEGs at quality 90, one
single-pill and one combination photo, unless ``--single``/``--combo`` name files. The image
work alone (decode + letterbox + crops) is also timed on both photo engines side by side,
Pillow against the Rust engine (``bench/photo.py``), on those JPEGs and on an AIHub-format
PNG (the synthetic single-pill photo as generated, unless ``--png`` names one).
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pillsnap.bench import photo as bench_photo
from pillsnap.bench.latency import interleaved, percentiles, time_runs
from pillsnap.bench.load import closed_loop
from pillsnap.bench.machine import describe, describe_line
from pillsnap.bench.table import markdown_table
from pillsnap.config import PillsnapConfig
from pillsnap.contract import ops
from pillsnap.contract.photo import ENGINE_ENV, native_available
from pillsnap.infer.bundle import export_record
from pillsnap.infer.pipeline import OnnxPipeline
from pillsnap.infer.triton_contract import INPUT_IMAGE, INPUT_TOP_K

logger = logging.getLogger(__name__)

CONCURRENCY = (1, 8, 32)


@dataclass(frozen=True)
class Samples:
    """The photos (``single`` and ``combo``: JPEG bytes; ``png``: a single-pill PNG) and, for
    the synthetic ones, their pills' labelled ``[x, y, w, h]`` boxes, which the image-work
    rows crop as a trained detector would find them (an untrained one's are not pill-like)."""

    photos: dict[str, bytes]
    pills: dict[str, list[list[float]]]


def sample_photos(single: Path | None, combo: Path | None,
                  png: Path | None = None) -> Samples:
    """One single-pill and one combination photo as JPEG, and a single-pill PNG (synthetic
    AIHub-size ones unless given)."""
    given = {"single": single, "combo": combo, "png": png}
    if all(path is not None for path in given.values()):
        return Samples({kind: path.read_bytes() for kind, path in given.items()
                        if path is not None}, {})
    from PIL import Image

    from pillsnap.data.manifest import read_manifest
    from pillsnap.data.scan import scan
    from pillsnap.data.synth import SynthSpec, generate

    photos, pills = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "aihub"
        generate(root, SynthSpec(classes=4, train_per_class=1, val_per_class=0,
                                 combo_train=1, combo_val=0, seed=5))
        scan(root, Path(tmp) / "manifest", workers=1)
        rows = sorted(read_manifest(Path(tmp) / "manifest"), key=lambda r: r.path)
        for kind, marker in (("single", "단일"), ("combo", "조합")):
            row = next(r for r in rows if marker in r.path)
            buffer = io.BytesIO()
            with Image.open(root / row.path) as img:
                img.convert("RGB").save(buffer, format="JPEG", quality=90)
            photos[kind] = buffer.getvalue()
            pills[kind] = [list(p.bbox) for p in row.pills]
            if kind == "single":  # as the generator wrote it, like AIHub's
                photos["png"], pills["png"] = (root / row.path).read_bytes(), pills[kind]
    for kind, path in given.items():
        if path is not None:
            photos[kind] = path.read_bytes()
            pills.pop(kind, None)
    return Samples(photos, pills)


def in_process_latency(pipe: OnnxPipeline, photos: dict[str, bytes], ckpt: Path | None,
                       warmup: int, runs: int, *,
                       engine: str = "ONNX Runtime") -> dict[str, dict[str, float]]:
    crop = ops.classifier_crops(pipe.decode(photos["single"]), None,
                                size=pipe.recipe.crop.size,
                                short_side=pipe.recipe.crop.short_side)
    x = ops.normalise(crop, pipe.recipe.crop.mean, pipe.recipe.crop.std)
    rows: dict[str, dict[str, float]] = {}
    if ckpt is not None:
        rows["PyTorch eager: classifier, one crop"] = _torch_latency(ckpt, x, warmup, runs)
    rows[f"{engine}: classifier, one crop"] = percentiles(time_runs(
        lambda: pipe.classifier.run(["logits"], {"images": x}), warmup, runs))
    for kind in pipe.pipelines:
        # on the Rust engine and, taking turns with it, on today's Pillow fallback
        calls = {"": functools.partial(_predict, pipe, photos[kind], kind, None)}
        if native_available():
            calls[", Pillow photo path"] = functools.partial(_predict, pipe, photos[kind], kind,
                                                             "pillow")
        for suffix, samples in interleaved(calls, warmup, runs).items():
            rows[f"{engine} in-process: {kind} pipeline{suffix}"] = percentiles(samples)
    return rows


def _predict(pipe: OnnxPipeline, photo: bytes, pipeline: str, engine: str | None) -> None:
    if engine is None:
        pipe.predict(photo, pipeline=pipeline)
        return
    with _photo_engine(engine):
        pipe.predict(photo, pipeline=pipeline)


def model_share(pipe: OnnxPipeline, photos: dict[str, bytes], warmup: int,
                runs: int) -> dict[str, dict[str, float]]:
    """Per pipeline: the mean answer, the part of it inside ONNX Runtime (the models, and on
    a GPU the copies to and from it) and the rest (image work, box selection, the answer),
    which on a GPU is the CPU's share of an answer."""
    split: dict[str, dict[str, float]] = {}
    for kind in pipe.pipelines:
        def call(k: str = kind) -> None:
            pipe.predict(photos[k], pipeline=k)

        time_runs(call, warmup, 0)
        before = pipe.model_seconds
        samples = time_runs(call, 0, runs)
        total = float(np.mean(samples))
        model = (pipe.model_seconds - before) * 1000 / runs
        split[kind] = {"answer_ms": total, "model_ms": model, "outside_ms": total - model,
                       "outside_share": (total - model) / total}
    return split


@contextmanager
def _photo_engine(engine: str) -> Iterator[None]:
    before = os.environ.get(ENGINE_ENV)
    os.environ[ENGINE_ENV] = engine
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENGINE_ENV, None)
        else:
            os.environ[ENGINE_ENV] = before


def _torch_latency(ckpt: Path, x: np.ndarray, warmup: int, runs: int) -> dict[str, float]:
    import torch

    from pillsnap.export.checkpoint import load_classifier_checkpoint

    model = load_classifier_checkpoint(ckpt).model.eval()
    tensor = torch.from_numpy(x)

    @torch.inference_mode()
    def call() -> None:
        model(tensor).numpy()

    return percentiles(time_runs(call, warmup, runs))


def triton_figures(repository: Path, photos: dict[str, bytes], cfg: PillsnapConfig,
                   requests: int) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Latency (sync HTTP client) and closed-loop throughput of both ensembles."""
    import tritonclient.http as httpclient

    from pillsnap.serve.triton_server import TritonLaunch, TritonServer, free_ports

    m = cfg.targets.measurement
    latency: dict[str, dict[str, float]] = {}
    throughput: dict[str, Any] = {}
    with TritonServer(TritonLaunch(repository, free_ports())) as server:
        host = server.url.removeprefix("http://")
        client = httpclient.InferenceServerClient(host)
        for ensemble in server.launch.ensembles():
            kind = ensemble.removeprefix("pill_")
            inputs = triton_inputs(httpclient, photos[kind])
            latency[f"Triton HTTP: {ensemble}"] = percentiles(time_runs(
                lambda e=ensemble, i=inputs: client.infer(e, i), m.warmup_runs, m.runs))
            throughput[ensemble] = {c: asyncio.run(_load(host, ensemble, photos[kind], c,
                                                         requests))
                                    for c in CONCURRENCY}
        client.close()
    return latency, throughput


def triton_inputs(module: Any, photo: bytes, top_k: int = 5) -> list[Any]:
    """IMAGE and TOP_K for the ensembles, built with ``module`` (tritonclient.http[.aio])."""
    image = module.InferInput(INPUT_IMAGE, [len(photo)], "UINT8")
    image.set_data_from_numpy(np.frombuffer(photo, dtype=np.uint8))
    k = module.InferInput(INPUT_TOP_K, [1], "INT32")
    k.set_data_from_numpy(np.array([top_k], dtype=np.int32))
    return [image, k]


async def _load(host: str, ensemble: str, photo: bytes, concurrency: int,
                requests: int) -> dict[str, Any]:
    import tritonclient.http.aio as aioclient

    client = aioclient.InferenceServerClient(host, conn_limit=concurrency)
    inputs = triton_inputs(aioclient, photo)
    try:
        for _ in range(min(concurrency, 4)):  # warm connections and the model instance
            await client.infer(ensemble, inputs)
        return await closed_loop(lambda: client.infer(ensemble, inputs),
                                 total=max(requests, 4 * concurrency), concurrency=concurrency)
    finally:
        await client.close()


def run(export: Path | None, cfg: PillsnapConfig, *, repository: Path | None,
        ckpt: Path | None, samples: Samples, requests: int, json_out: Path | None,
        device: str = "cpu", io_binding: str = "auto",
        standin: Path | None = None) -> dict[str, Any]:
    """``standin``: a folder from ``python -m pillsnap.bench standin`` (``bench/standin.py``):
    the in-process rows on PyTorch modules instead of an export's ONNX sessions."""
    m = cfg.targets.measurement
    photos = samples.photos
    if standin is not None:
        from pillsnap.bench import standin as bench_standin

        engine = bench_standin.LABEL
        pipe = bench_standin.open_pipeline(standin, device, calibrate=photos["combo"])
    elif export is not None:
        engine = "ONNX Runtime"
        if ckpt is None:
            named = Path(export_record(export)["classifier"].get("checkpoint", ""))
            ckpt = named if named.is_file() else None
        pipe = OnnxPipeline.open(export, max_pixels=cfg.serve.max_pixels, device=device,
                                 io_binding=io_binding, warm=True)  # io_binding=auto: settled
    else:
        raise SystemExit("bench serve needs --export (or --standin)")
    image_work = bench_photo.figures(pipe, samples.photos, samples.pills, m.warmup_runs,
                                     m.runs)
    latency = in_process_latency(pipe, photos, ckpt, m.warmup_runs, m.runs,
                                 engine=engine)
    split = model_share(pipe, photos, m.warmup_runs, m.runs)
    throughput: dict[str, Any] = {}
    if repository is not None:
        triton_latency, throughput = triton_figures(repository, photos, cfg, requests)
        latency.update(triton_latency)
    result = {"machine": describe(), "engine": engine, "device": pipe.device,
              "io_binding": pipe.io_bound, "export": str(standin or export),
              "model_version":
              pipe.bundle.model_version, "photo_bytes": {k: len(v) for k, v in photos.items()},
              "warmup_runs": m.warmup_runs, "runs": m.runs, "latency_ms": latency,
              "throughput": throughput, "model_share": split, "image_work_ms": image_work}
    print_report(result, cfg.targets.p95_latency_ms)
    det = pipe.recipe.detector
    print()
    bench_photo.print_table(image_work, det.size if det is not None else None)
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def print_report(result: dict[str, Any], target_ms: float) -> None:
    print(f"machine: {describe_line()}")
    print(f"model {result['model_version']}; {result['engine']} on {result['device']}, IO "
          f"binding {result['io_binding']}; batch 1, "
          f"{result['warmup_runs']} warm-up + {result['runs']} runs; photos (JPEG bytes): "
          f"{result['photo_bytes']}\n")
    print(markdown_table([("path", "p50 ms", "p95 ms", "p99 ms", f"p95 <= {target_ms:g} ms")] + [
        (name, f"{r['p50']:.1f}", f"{r['p95']:.1f}", f"{r['p99']:.1f}",
         "yes" if r["p95"] <= target_ms else "no")
        for name, r in result["latency_ms"].items()]))
    print()
    print(markdown_table([("in-process pipeline", "answer ms (mean)", "in ONNX Runtime ms",
                           "outside ms", "outside share")] + [
        (kind, f"{s['answer_ms']:.1f}", f"{s['model_ms']:.1f}", f"{s['outside_ms']:.1f}",
         f"{s['outside_share']:.0%}") for kind, s in result["model_share"].items()]))
    if result["throughput"]:
        print()
        rows = [("ensemble", "concurrency", "requests/s", "p50 ms", "p95 ms", "p99 ms",
                 "errors")]
        for ensemble, levels in result["throughput"].items():
            for c, s in levels.items():
                rows.append((ensemble, str(c), f"{s['rps']:.1f}", f"{s.get('p50', 0):.1f}",
                             f"{s.get('p95', 0):.1f}", f"{s.get('p99', 0):.1f}",
                             str(s["errors"])))
        print(markdown_table(rows))
