"""Training-input throughput per CPU core: the plain PIL path against PackLoader.

    python -m pillsnap.bench loader [--images 200] [--work /tmp/pillsnap-bench] [--json F]
                                    [--size 384] [--methods C,F,L-native]

All methods read the same synthetic 976x1280 AIHub-format photos and produce the same
thing, a RandomResizedCrop(size) + horizontal flip as uint8 (size 384 by default; the
stored JPEGs keep short side 480 whatever the size):

- A: torchvision-style Dataset + PIL + DataLoader over the original PNGs (the plain path);
- B: the same over the pre-resized JPEGs (short side 480, q90) that the pack holds;
- C: PackLoader over the pack of those JPEGs;
- F: FFCV's recipe in the same native code: full decode, then crop, resize and flip;
- L: the decode-only limit: full decode of the stored JPEGs, one thread (libjpeg-turbo via
  pillsnap._native; PIL and torchvision.io shown beside it).

Each method runs in its own process, single-threaded, so images/s is per core and peak
RSS is its own. A second table runs A, B and C on every core.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pillsnap.bench.table import markdown_table

SHORT_SIDE, QUALITY, CROP = 480, 90, 384
METHODS = ("A", "B", "C", "F", "L-native", "L-pil", "L-torchvision")
MIN_SECONDS = 3.0


def prepare(work: Path, images: int) -> dict[str, Any]:
    """Synthetic photos, their manifest, the resized JPEGs and the pack (reused if present)."""
    from pillsnap.data.manifest import read_manifest
    from pillsnap.data.pack import build_pack
    from pillsnap.data.scan import scan
    from pillsnap.data.synth import SynthSpec, generate

    dataset, manifest = work / "dataset", work / "manifest"
    jpegs, pack = work / "jpeg", work / "train.pack"
    if not (manifest / "manifest.jsonl").is_file():
        classes = max(1, images // 10)
        spec = SynthSpec(classes=classes, train_per_class=10, val_per_class=0, combo_train=0,
                         combo_val=0, seed=1)
        generate(dataset, spec, workers=os.cpu_count() or 1)
        scan(dataset, manifest, workers=1)
    pngs = [str(dataset / r.path) for r in read_manifest(manifest) if r.split == "train"]
    if not jpegs.is_dir():
        _resize_all(pngs, jpegs)
    if not pack.is_file():
        build_pack(manifest, dataset, pack, split="train", short_side=SHORT_SIDE,
                   quality=QUALITY, region="image")
    files = sorted(str(p) for p in jpegs.glob("*.jpg"))
    size = sum(Path(f).stat().st_size for f in files)
    return {"pngs": pngs, "jpegs": files, "pack": str(pack),
            "jpeg_kb": size / len(files) / 1024,
            "pack_mb_per_1000": pack.stat().st_size / len(files) * 1000 / 2**20}


def _resize_all(pngs: list[str], out: Path) -> None:
    from PIL import Image

    out.mkdir(parents=True)
    for n, path in enumerate(pngs):
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        scale = SHORT_SIDE / min(rgb.size)
        size = (round(rgb.width * scale), round(rgb.height * scale))
        rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=None).save(
            out / f"{n:06d}.jpg", quality=QUALITY)


def _rate(step: Callable[[], int]) -> float:
    """Images/s of repeated ``step()`` calls (each returns images done) over MIN_SECONDS."""
    step()  # warm-up: page cache, lazy imports, thread start
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < MIN_SECONDS:
        done += step()
    return done / (time.perf_counter() - started)


def _dataloader_rate(files: list[str], workers: int, size: int) -> float:
    import torch
    from PIL import Image
    from torchvision import transforms

    transform = transforms.Compose([
        transforms.RandomResizedCrop(size, antialias=True),
        transforms.RandomHorizontalFlip(),
        transforms.PILToTensor(),
    ])

    class Files(torch.utils.data.Dataset):  # the plain path users write first
        def __len__(self) -> int:
            return len(files)

        def __getitem__(self, i: int) -> torch.Tensor:
            with Image.open(files[i]) as img:
                return transform(img.convert("RGB"))

    loader = torch.utils.data.DataLoader(Files(), batch_size=32, shuffle=True,
                                         num_workers=workers, persistent_workers=workers > 0)

    def epoch() -> int:
        return sum(batch.shape[0] for batch in loader)

    return _rate(epoch)


def _packloader_rate(pack: str, threads: int, size: int) -> float:
    from pillsnap.data.loader import PackLoader

    loader = PackLoader(pack, batch_size=32, image_size=size, train=True, threads=threads,
                        drop_last=False, pin_memory=False)

    def epoch() -> int:
        return sum(images.shape[0] for images, _ in loader)

    return _rate(epoch)


def _full_decode_then_crop_rate(files: list[str], size: int) -> float:
    """FFCV's recipe in the same native code: decode everything, then crop, resize, flip."""
    import numpy as np

    from pillsnap.native import _native as nat

    blobs = [Path(f).read_bytes() for f in files]
    out = np.empty(size * size * 3, np.uint8)

    def epoch() -> int:
        for i, blob in enumerate(blobs):
            nat.decode_train_sample(blob, size, 0, 0, i, out, full_decode=True)
        return len(blobs)

    return _rate(epoch)


def _decode_rate(files: list[str], how: str) -> float:
    blobs = [Path(f).read_bytes() for f in files]
    if how == "native":
        import numpy as np

        from pillsnap.native import _native as nat

        outs: dict[tuple[int, int], np.ndarray] = {}

        def decode(blob: bytes) -> object:
            width, height, _ = nat.jpeg_header(blob)
            out = outs.setdefault((width, height), np.empty(width * height * 3, np.uint8))
            return nat.decode_full(blob, out)
    elif how == "pil":
        import io

        from PIL import Image

        def decode(blob: bytes) -> object:
            with Image.open(io.BytesIO(blob)) as img:
                img.load()
                return img

    else:
        import torch
        from torchvision.io import decode_jpeg

        tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
        return _rate(lambda: sum(1 for t in tensors if decode_jpeg(t) is not None))
    return _rate(lambda: sum(1 for b in blobs if decode(b) is not None))


def run_method(method: str, data: dict[str, Any], cores: int, size: int = CROP) -> float:
    import torch

    torch.set_num_threads(cores)
    if method == "A":
        return _dataloader_rate(data["pngs"], 0 if cores == 1 else cores, size)
    if method == "B":
        return _dataloader_rate(data["jpegs"], 0 if cores == 1 else cores, size)
    if method == "C":
        return _packloader_rate(data["pack"], cores, size)
    if method == "F":
        return _full_decode_then_crop_rate(data["jpegs"], size)
    return _decode_rate(data["jpegs"], method.split("-", 1)[1])


def _child(method: str, work: Path, cores: int, size: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "pillsnap.bench", "loader", "--work", str(work), "--child", method,
         "--cores", str(cores), "--size", str(size)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"method {method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(method: str, work: Path, cores: int, images: int, size: int = CROP) -> None:
    data = prepare(work, images)
    rate = run_method(method, data, cores, size)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "img_s": rate, "peak_rss_mb": rss_mb}))


def main(work: Path, images: int, json_out: Path | None, size: int = CROP,
         methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    from pillsnap.bench.machine import describe, describe_line

    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    data = prepare(work, images)
    cores = len(os.sched_getaffinity(0))
    names = {"A": "A: PIL + DataLoader, PNG originals", "B": "B: PIL + DataLoader, resized JPEG",
             "C": "C: PackLoader",
             "F": "F: full decode, then crop + resize + flip (FFCV's recipe, native)",
             "L-native": "L: full decode, libjpeg-turbo (native)",
             "L-pil": "L': full decode, PIL", "L-torchvision": "L'': full decode, torchvision.io"}
    names = {m: name for m, name in names.items() if m in methods}
    per_core = {m: _child(m, work, 1, size) for m in names}
    all_cores = {m: _child(m, work, cores, size) for m in ("A", "B", "C") if m in names}
    rate = {m: r["img_s"] for m, r in per_core.items()}
    short = {"L-native": "L", "L-pil": "L_pil", "L-torchvision": "L_torchvision"}
    pairs = {"C/A": ("C", "A"), "C/B": ("C", "B"), "C/L": ("C", "L-native"), "C/F": ("C", "F")}
    result = {
        "machine": describe(), "size": size,
        "images": len(data["jpegs"]), "jpeg_kb": round(data["jpeg_kb"], 1),
        "pack_mb_per_1000": round(data["pack_mb_per_1000"], 1),
        "per_core_img_s": {short.get(m, m): r for m, r in rate.items()},
        "all_cores_img_s": {m: r["img_s"] for m, r in all_cores.items()},
        "peak_rss_mb": {m: round(r["peak_rss_mb"]) for m, r in per_core.items()},
        "ratios": {k: rate[a] / rate[b] for k, (a, b) in pairs.items()
                   if a in rate and b in rate},
    }
    print(f"machine: {describe_line()}")
    print(f"{result['images']} photos 976x1280 -> JPEG short side {SHORT_SIDE} q{QUALITY} "
          f"({result['jpeg_kb']} KB each); pack {result['pack_mb_per_1000']} MB per 1,000")
    print(f"RandomResizedCrop({size}) + flip, uint8; one process, one thread per method\n")
    header = ("method", "img/s per core", f"img/s on {cores} cores", "peak RSS MB")
    print(markdown_table([header] + [
        (name, f"{per_core[m]['img_s']:.0f}",
         f"{all_cores[m]['img_s']:.0f}" if m in all_cores else "",
         f"{per_core[m]['peak_rss_mb']:.0f}") for m, name in names.items()]))
    print("\nratios: " + ", ".join(f"{k} = {v:.2f}" for k, v in result["ratios"].items()))
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
