"""Classifier training speed: PackLoader against batches already on the GPU.

    python -m pillsnap.bench train [--images 6000] [--batch 128] [--modes none,default]
                                   [--arch tf_efficientnetv2_s] [--size 384] [--json F]

The trainer's own code runs here (``build_session`` and ``loop.train_epoch``: AMP, TF32,
channels_last, torch.compile, EMA, clipping), so the numbers are what
``python -m pillsnap.train`` gets. For each compile mode:

- **resident**: the loop over one batch that already sits on the GPU, repeated: the
  ceiling, with no input pipeline at all;
- **loader**: the same loop fed by PackLoader + DevicePrefetcher over a pack of synthetic
  photos (whole photos at short side 480 as JPEG q90: the heavier ``pack.region=image``
  case), ``--epochs`` full epochs, each start included.

loader-bound ratio = last loader epoch's img/s / resident img/s (the issue's target: >= 0.97);
data share = time waiting for the next batch / step time (target: < 3%). Then the largest
batch the auto batch tuner finds (eager, its own headroom rule) on this GPU and on a 16 GB
card, simulated with ``torch.cuda.set_per_process_memory_fraction``.

Without CUDA it still runs (CPU, fp32) with a tiny model, which is how the test suite
keeps it working; the figures only mean something on a GPU.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pillsnap.bench.machine import describe, describe_line
from pillsnap.bench.steps import Recorder
from pillsnap.bench.table import markdown_table
from pillsnap.config import load_config
from pillsnap.config.schema import AutoBatchConfig, PillsnapConfig
from pillsnap.data.classes import ClassIndex
from pillsnap.train import loop
from pillsnap.train.autobatch import probe, search_batch
from pillsnap.train.classifier import probe_step
from pillsnap.train.distributed import Dist
from pillsnap.train.session import Session, build_session

logger = logging.getLogger(__name__)

SIMULATED_CARD_GIB = 16.0  # the reference workstation's RTX 5080


@dataclass(frozen=True)
class Plan:
    work: Path
    images: int
    classes: int
    batch: int
    arch: str
    size: int
    modes: tuple[str, ...]
    resident_steps: int
    epochs: int  # loader epochs per mode
    max_batch: int
    threads: int  # 0: the trainer's autotune
    window: int = 20  # steps per throughput window (bench/steps.py)
    profile: bool = False  # profile a normal and the first slow window of each mode


def prepare(work: Path, images: int, classes: int) -> tuple[Path, Path]:
    """Synthetic photos -> manifest -> train pack (whole photos, short side 480); reused."""
    from pillsnap.data.pack import build_pack
    from pillsnap.data.scan import scan
    from pillsnap.data.synth import SynthSpec, generate

    dataset, manifest, pack = work / "dataset", work / "manifest", work / "packs" / "train.pack"
    if not (manifest / "manifest.jsonl").is_file():
        per_class = max(1, images // classes)
        # 488x640 photos draw 4x faster than 976x1280; packed at short side 480 the JPEGs
        # the loader decodes have the same geometry either way.
        spec = SynthSpec(classes=classes, train_per_class=per_class, val_per_class=1,
                         combo_train=0, combo_val=0, width=488, height=640, seed=3)
        generate(dataset, spec, workers=os.cpu_count() or 1)
        scan(dataset, manifest, workers=os.cpu_count() or 1)
    if not pack.is_file():
        build_pack(manifest, dataset, pack, split="train", short_side=480, quality=90,
                   region="image", workers=os.cpu_count() or 1)
    return manifest, pack


def bench_config(plan: Plan, manifest: Path, mode: str) -> PillsnapConfig:
    overrides = [
        f"run.out_dir={plan.work / 'runs'}", f"run.name=bench-{mode}",
        f"data.manifest_dir={manifest}", f"pack.out_dir={plan.work / 'packs'}",
        f"models.classifier.arch={plan.arch}", f"models.classifier.image_size={plan.size}",
        "models.classifier.pretrained=false", f"train.batch_size={plan.batch}",
        f"train.compile={mode}", "train.auto_batch.enabled=false", "logging.tensorboard=false",
        "logging.file=false", "logging.log_every_steps=20", "cache.hotset_gb=4",
        f"dataloader.threads={plan.threads}",
        f"dataloader.autotune={str(plan.threads == 0).lower()}",
    ]
    return load_config(None, overrides, env_file=None, environ={})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_epoch(s: Session, epoch: int, batches: Any = None) -> dict[str, float]:
    _sync(s.device)
    started = time.perf_counter()
    stats = loop.train_epoch(s, epoch, batches)
    _sync(s.device)
    seconds = time.perf_counter() - started
    step_time = stats["data_time"] + stats["compute_time"]
    return {"img_s": stats["images"] / seconds, "seconds": seconds, "steps": stats["batches"],
            "data_share": stats["data_time"] / step_time if step_time else 0.0}


def _resident_batches(s: Session, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One batch like DevicePrefetcher's (float32, channels_last) handed out ``steps`` times."""
    size, batch = s.cfg.models.classifier.image_size, s.settings.batch_size
    images = torch.randn(batch, 3, size, size, device=s.device).contiguous(
        memory_format=torch.channels_last)
    labels = torch.randint(0, len(s.classes), (batch,), device=s.device)
    return [(images, labels)] * steps


def measure_mode(plan: Plan, manifest: Path, pack: Path, mode: str,
                 device: torch.device) -> dict[str, Any]:
    """Warm-up (compilation) time, then resident and loader throughput for one compile mode."""
    cfg = bench_config(plan, manifest, mode)
    classes = ClassIndex.load(manifest)
    s = build_session(cfg, Dist(), device, Path(cfg.run.out_dir) / cfg.run.name,
                      classes=classes, packs={"train": pack, "val": pack},
                      batch_size=plan.batch)
    s.open_train_loader()
    started = time.perf_counter()
    _timed_epoch(s, 0, _resident_batches(s, 3))  # compiles (when asked) and warms cuDNN
    warmup_s = time.perf_counter() - started
    recorder = Recorder(device, plan.batch, window=plan.window,
                        profile_dir=plan.work / "profiles" / mode if plan.profile else None)
    try:  # windows: epoch 0 is the resident pass
        resident = _timed_epoch(s, 0, recorder.wrap(_resident_batches(s, plan.resident_steps),
                                                    0))
        loader = [_timed_epoch(s, epoch, recorder.wrap(s.batches(epoch), epoch))
                  for epoch in range(1, plan.epochs + 1)]
    finally:
        recorder.close()
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    result = {"mode": mode, "compiled": s.forward.compiled is not None,
              "threads": s.threads, "warmup_s": warmup_s, "resident": resident,
              "loader": loader, "peak_gib": peak,
              "ratio": loader[-1]["img_s"] / resident["img_s"],
              "windows": recorder.windows, "slow_windows": recorder.slow_windows(),
              "profiles": recorder.profiles}
    del s
    _free(device)
    return result


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def max_batches(plan: Plan, manifest: Path, pack: Path, device: torch.device) -> dict[str, int]:
    """The tuner's answer (eager) on this card and on a simulated 16 GB one."""
    if device.type != "cuda" or plan.max_batch == 0:
        return {}
    cfg = bench_config(plan, manifest, "none")
    s = build_session(cfg, Dist(), device, Path(cfg.run.out_dir) / "bench-batch",
                      classes=ClassIndex.load(manifest), packs={"train": pack, "val": pack},
                      batch_size=plan.batch)
    total = torch.cuda.get_device_properties(device).total_memory
    step = probe_step(s)
    found = {}
    headroom = cfg.train.auto_batch.vram_headroom
    for name, share in (("this_gpu", 1.0),
                        (f"{SIMULATED_CARD_GIB:.0f}gb", SIMULATED_CARD_GIB * 2**30 / total)):
        fraction = min(share, 1.0)
        torch.cuda.set_per_process_memory_fraction(fraction, device)
        tuner = AutoBatchConfig(max_batch=plan.max_batch, vram_headroom=headroom * fraction)
        started = time.perf_counter()
        found[name] = search_batch(probe(step, device, tuner), 32, plan.max_batch)
        logger.info("max batch %s: %d (%.0f s)", name, found[name], time.perf_counter() - started)
    torch.cuda.set_per_process_memory_fraction(1.0, device)
    del s
    _free(device)
    return found


def run(plan: Plan, json_out: Path | None) -> dict[str, Any]:
    # An explicit index: set_per_process_memory_fraction refuses a bare "cuda".
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
        else torch.device("cpu")
    started = time.perf_counter()
    manifest, pack = prepare(plan.work, plan.images, plan.classes)
    data_s = time.perf_counter() - started
    result: dict[str, Any] = {"machine": describe(), "plan": {
        k: str(v) if isinstance(v, Path) else v for k, v in plan.__dict__.items()},
        "data_s": data_s, "modes": []}

    def save() -> None:  # after every stage: a run cut short still leaves its figures
        if json_out is not None:
            json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    result["max_batch"] = max_batches(plan, manifest, pack, device)
    save()
    for mode in plan.modes:
        result["modes"].append(measure_mode(plan, manifest, pack, mode, device))
        save()
        print_mode(result["modes"][-1], plan)
    print_report(result, plan)
    return result


def print_mode(m: dict[str, Any], plan: Plan) -> None:
    print(f"[{m['mode']}] warm-up {m['warmup_s']:.1f} s, resident {m['resident']['img_s']:.0f} "
          f"img/s, loader {m['loader'][-1]['img_s']:.0f} img/s, ratio {m['ratio']:.3f}",
          flush=True)
    rates = [w["img_s"] for w in m["windows"]]
    print(f"[{m['mode']}] {len(rates)} windows of {plan.window} steps: img/s min "
          f"{min(rates, default=0):.0f}, max {max(rates, default=0):.0f}; "
          f"{len(m['slow_windows'])} slow (epoch 0 is the resident pass)", flush=True)
    for epoch in sorted({w["epoch"] for w in m["windows"]}):
        print(f"  epoch {epoch}: " + " ".join(
            f"{w['img_s']:.0f}" + ("*" if w["profiled"] else "")
            for w in m["windows"] if w["epoch"] == epoch), flush=True)
    keys = ("epoch", "first_step", "img_s", "data_share", "cpu_s", "alloc_retries",
            "gc_passes", "gc_ms", "recompiles", "load", "sm_mhz", "power_w", "temp_c", "limits")
    if m["slow_windows"]:
        rows = [keys] + [tuple(_cell(w.get(k)) for k in keys) for w in m["slow_windows"]]
        print(markdown_table(rows), flush=True)
    for name, path in m["profiles"].items():
        print(f"[{m['mode']}] profile of the {name} window: {path}", flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return "" if value is None else str(value)


def print_report(result: dict[str, Any], plan: Plan) -> None:
    print(f"\nmachine: {describe_line()}")
    print(f"{plan.arch} {plan.size} px, batch {plan.batch}, {plan.classes} classes, "
          f"pack of {plan.images} photos (short side 480, JPEG q90)\n")
    rows = [("compile", "warm-up s", "resident img/s", "loader img/s per epoch",
             "loader/resident", "data share", "loader threads", "peak GiB")]
    for m in result["modes"]:
        rows.append((m["mode"] + ("" if m["compiled"] or m["mode"] == "none" else " (fell back)"),
                     f"{m['warmup_s']:.1f}", f"{m['resident']['img_s']:.0f}",
                     ", ".join(f"{e['img_s']:.0f}" for e in m["loader"]), f"{m['ratio']:.3f}",
                     ", ".join(f"{e['data_share']:.1%}" for e in m["loader"]),
                     str(m["threads"]), f"{m['peak_gib']:.1f}"))
    print(markdown_table(rows))
    if len(result["modes"]) > 1:
        base = result["modes"][0]["resident"]["img_s"]
        print("\nresident speed-up over " + result["modes"][0]["mode"] + ": " + ", ".join(
            f"{m['mode']} {m['resident']['img_s'] / base:.2f}x" for m in result["modes"][1:]))
    if result.get("max_batch"):
        print("max batch (auto batch tuner, eager): " + ", ".join(
            f"{k} {v}" for k, v in result["max_batch"].items()))
