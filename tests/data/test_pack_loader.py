"""Packing a manifest and loading it back: the pixels, the order, the shards, the damage."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pillsnap import _native
from pillsnap.contract.ops import IMAGENET_MEAN, IMAGENET_STD
from pillsnap.data import ClassIndex, read_manifest
from pillsnap.data import pack as pack_module
from pillsnap.data.autotune import autotune_threads
from pillsnap.data.loader import PackLoader
from pillsnap.data.pack import build_pack
from pillsnap.data.prefetch import DevicePrefetcher
from pillsnap.data.scan import scan
from pillsnap.errors import LoaderError

SIZE = 64  # loader output side
SHORT = 96  # stored short side
# Largest mean absolute difference (0-255 levels) allowed between PackLoader and a PIL
# reference of the same crop: libjpeg-turbo's crop-before-decode (with DCT scaling where the
# crop allows it) against PIL's full decode then crop and bilinear antialiased resize.
# Seen here: 0.00-0.05 at source resolution; DCT-scaled crops stay near 0.5.
MAX_MAE = 1.0


@pytest.fixture(scope="module")
def manifest(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifest")
    scan(synth_root, out, workers=1)
    return out


@pytest.fixture(scope="module")
def photo_pack(manifest: Path, synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Whole photos, train split."""
    out = tmp_path_factory.mktemp("pack") / "train.pack"
    build_pack(manifest, synth_root, out, split="train", short_side=SHORT, region="image",
               workers=2)
    return out


def loader(pack: Path, **kw: object) -> PackLoader:
    options: dict = {"batch_size": 8, "image_size": SIZE, "threads": 2, "seed": 5}
    options.update(kw)
    return PackLoader(pack, **options)


def epoch_batches(ld: PackLoader, epoch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    ld.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in ld]


def test_pack_cli_writes_both_splits_and_the_yolo_view(manifest: Path, synth_root: Path,
                                                        tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pillsnap.data", "pack", "--manifest", str(manifest), "--root",
         str(synth_root), "--out", str(tmp_path), "pack.short_side=64", "pack.workers=2"],
        capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "0 unreadable skipped" in done.stdout
    rows = list(read_manifest(manifest))
    for split in ("train", "val"):
        reader = _native.PackReader(tmp_path / f"{split}.pack")
        pills = [p for r in rows if r.split == split for p in r.pills]
        assert len(reader) == len(pills)  # region=pill: one record per pill
        header = reader.header()
        assert header["class_hash"] == ClassIndex.load(manifest).hash
        assert header["metadata"]["region"] == "pill"
        assert sorted(reader.labels()) == sorted(
            ClassIndex.load(manifest).index(p.k_code) for p in pills)
        meta = reader.meta(0)
        assert min(meta["width"], meta["height"]) <= 64
        assert reader.verify_all() == []
    assert (tmp_path / "yolo" / "data.yaml").is_file()


def test_batches_match_a_pil_reference_of_the_same_crop(photo_pack: Path) -> None:
    reader = _native.PackReader(photo_pack)
    ld = loader(photo_pack, shuffle=False, drop_last=False)
    images, labels = next(iter(ld))
    assert images.shape == (8, 3, SIZE, SIZE) and images.dtype == torch.uint8
    assert images.is_contiguous(memory_format=torch.channels_last)
    for i in range(8):
        meta = reader.meta(i)
        x, y, w, h, flip = _native.crop_params_train(meta["width"], meta["height"], SIZE, 5, 0, i)
        with Image.open(io.BytesIO(reader.record(i))) as img:
            ref = img.convert("RGB").crop((x, y, x + w, y + h))
        ref = ref.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=None)
        if flip:
            ref = ref.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        got = images[i].permute(1, 2, 0).numpy().astype(np.int16)
        mae = np.abs(got - np.asarray(ref, dtype=np.int16)).mean()
        assert mae <= MAX_MAE, (i, mae)
        assert labels[i] == meta["label"]


def test_same_seed_same_batches_whatever_the_threads(photo_pack: Path) -> None:
    one = epoch_batches(loader(photo_pack, threads=1), epoch=3)
    two = epoch_batches(loader(photo_pack, threads=2), epoch=3)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for a, b in zip(one, two, strict=True))
    other_epoch = epoch_batches(loader(photo_pack, threads=2), epoch=4)
    assert not torch.equal(one[0][0], other_epoch[0][0])
    other_seed = epoch_batches(loader(photo_pack, seed=6), epoch=3)
    assert not torch.equal(one[0][0], other_seed[0][0])


def test_len_and_drop_last(photo_pack: Path) -> None:
    records = len(_native.PackReader(photo_pack))
    assert len(loader(photo_pack, drop_last=True)) == records // 8
    batches = epoch_batches(loader(photo_pack, drop_last=False, train=False))
    assert len(batches) == -(-records // 8)
    assert sum(len(y) for _, y in batches) == records


def test_an_epoch_started_at_batch_k_serves_the_whole_epochs_batches_from_k(
        photo_pack: Path) -> None:
    """What a run resumed mid-epoch relies on: the same crops, flips and labels, in order,
    and the skipped batches are not decoded (the samples counter says so)."""
    whole = epoch_batches(loader(photo_pack, drop_last=False), epoch=3)
    for start in (1, len(whole) - 1, len(whole)):
        ld = loader(photo_pack, drop_last=False)
        ld.set_epoch(3, start_batch=start)
        rest = [(x.clone(), y.clone()) for x, y in ld]
        assert len(rest) == len(whole) - start
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                   for a, b in zip(rest, whole[start:], strict=True))
        assert ld.stats()["samples"] == sum(len(y) for _, y in whole[start:])
    ld = loader(photo_pack, drop_last=False)
    ld.set_epoch(3, start_batch=len(whole) + 1)
    with pytest.raises(ValueError, match="past the end of an epoch"):
        next(iter(ld))


def _digests(ld: PackLoader) -> list[str]:
    return [hashlib.sha1(img.numpy().tobytes()).hexdigest()
            for x, _ in epoch_batches(ld, epoch=2) for img in x]


def test_ddp_ranks_get_disjoint_shards_that_cover_the_epoch(photo_pack: Path) -> None:
    # Eval mode makes a sample's pixels its identity; the shuffle is still per epoch.
    everything = _digests(loader(photo_pack, train=False, shuffle=True, drop_last=False))
    ranks = [_digests(loader(photo_pack, train=False, shuffle=True, drop_last=True, rank=r,
                             world_size=2, batch_size=1)) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])
    assert len(ranks[0]) == len(ranks[1]) == len(everything) // 2
    assert set(ranks[0]) | set(ranks[1]) <= set(everything)


def test_a_damaged_record_is_skipped_and_counted(photo_pack: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.pack"
    shutil.copy(photo_pack, damaged)
    meta = _native.PackReader(damaged).meta(3)
    with damaged.open("r+b") as fh:
        fh.seek(meta["offset"] + meta["length"] // 2)
        byte = fh.read(1)
        fh.seek(-1, io.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert _native.PackReader(damaged).verify_all() == [3]
    ld = loader(damaged, train=False, shuffle=False, drop_last=False)
    batches = epoch_batches(ld)
    assert sum(len(y) for _, y in batches) == len(_native.PackReader(damaged))
    stats = ld.stats()
    assert stats["skipped"] == 1
    assert "record 3" in stats["last_error"]


def _iterate_in_child(ld: PackLoader, queue: multiprocessing.Queue) -> None:
    try:
        next(iter(ld))
        queue.put("iterated")
    except LoaderError as exc:
        queue.put(f"LoaderError: {exc}")


def test_a_forked_child_gets_a_clear_error(photo_pack: Path) -> None:
    ld = loader(photo_pack)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_iterate_in_child, args=(ld, queue))
    child.start()
    child.join(timeout=60)
    message = queue.get(timeout=5)
    assert message.startswith("LoaderError") and "fork" in message
    assert next(iter(ld))[0].shape[0] == 8  # the parent's loader still works


def test_interrupted_pack_resumes_to_the_same_records(manifest: Path, synth_root: Path,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    whole = tmp_path / "whole.pack"
    build_pack(manifest, synth_root, whole, short_side=SHORT, region="image", workers=1)
    calls = {"n": 0}
    real = _native.prepare_records

    def failing(*args: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a pack
        return real(*args, **kw)

    monkeypatch.setattr(pack_module, "CHUNK", 4)
    monkeypatch.setattr(_native, "prepare_records", failing)
    resumed = tmp_path / "resumed.pack"
    with pytest.raises(KeyboardInterrupt):
        build_pack(manifest, synth_root, resumed, short_side=SHORT, region="image", workers=1)
    assert not resumed.exists()
    monkeypatch.setattr(_native, "prepare_records", real)
    report = build_pack(manifest, synth_root, resumed, short_side=SHORT, region="image",
                        workers=1)
    a, b = _native.PackReader(whole), _native.PackReader(resumed)
    assert report["records"] == len(a) == len(b)
    assert all(a.record(i) == b.record(i) and a.meta(i)["source_id"] == b.meta(i)["source_id"]
               for i in range(len(a)))


def test_unreadable_sources_are_skipped_and_reported(manifest: Path, synth_copy: Path,
                                                     tmp_path: Path) -> None:
    rows = [r for r in read_manifest(manifest) if r.split == "train"]
    (synth_copy / rows[0].path).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    report = build_pack(manifest, synth_copy, tmp_path / "t.pack", region="image", workers=2)
    assert report["skipped_unreadable"] == 1
    assert rows[0].path.split("/")[-1] in report["skipped_examples"][0]
    assert report["records"] == len(rows) - 1


def test_device_prefetcher_normalises_on_the_cpu(photo_pack: Path) -> None:
    ld = loader(photo_pack, train=False, shuffle=False)
    raw = next(iter(ld))[0].clone()
    x, y = next(iter(DevicePrefetcher(ld, "cpu")))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    torch.testing.assert_close(x, (raw.float() - mean) / std)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert y.shape == (8,)


def test_autotune_keeps_the_fastest_candidate(photo_pack: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    best = autotune_threads(lambda t: loader(photo_pack, threads=t), [1, 2], batches=2)
    assert best in (1, 2)
    assert any("decision: dataloader.threads=" in r.getMessage() for r in caplog.records)


def test_raw_rgb_pack_loads_like_the_jpeg_pack(manifest: Path, synth_root: Path,
                                              photo_pack: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.pack"
    build_pack(manifest, synth_root, raw, short_side=SHORT, region="image", storage="raw_rgb",
               workers=2)
    assert _native.PackReader(raw).header()["storage"] == "raw_rgb"
    a = next(iter(loader(raw, train=False, shuffle=False)))[0].float()
    b = next(iter(loader(photo_pack, train=False, shuffle=False)))[0].float()
    assert (a - b).abs().mean() < 3.0  # only JPEG q90 loss between them


def test_hotset_policy_is_applied_and_logged(photo_pack: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    ld = loader(photo_pack, cache_policy="hotset", lock_bytes=4096)
    assert next(iter(ld))[0].shape[0] == 8
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("decision: cache.policy=hotset") for line in lines)


def test_loader_from_config_autotunes_and_applies_the_cache_policy(
        photo_pack: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pillsnap.config import load_config
    from pillsnap.data.loader_factory import loader_from_config

    caplog.set_level("INFO")
    cfg = load_config(None, ["dataloader.autotune_candidates=[1, 2]",
                             "dataloader.autotune_batches=2", "models.classifier.image_size=48",
                             "train.batch_size=4"], environ={})
    ld = loader_from_config(cfg, photo_pack, train=True, batch_size=cfg.train.batch_size)
    assert ld.threads in (1, 2) and ld.image_size == 48 and ld.batch_size == 4
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("decision: dataloader.threads=") for line in lines)
    assert any(line.startswith("decision: cache.policy=hotset") for line in lines)


def test_ctrl_c_stops_a_waiting_loop_promptly(photo_pack: Path, tmp_path: Path) -> None:
    # The consumer spends nearly all its time waiting inside next_batch (one thread, big
    # crops), where the GIL is released: the interrupt must still get through.
    script = tmp_path / "spin.py"
    script.write_text(
        "import sys, time\n"
        "from pillsnap.data.loader import PackLoader\n"
        f"ld = PackLoader({str(photo_pack)!r}, batch_size=4, image_size=384, threads=1)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    while True:\n"
        "        for _ in ld:\n"
        "            pass\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n")
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=10)
    assert "interrupted" in out
    assert time.monotonic() - sent < 2.0


def test_crop_scale_and_flip_probability_are_honoured(photo_pack: Path) -> None:
    def epoch_change(ld: PackLoader) -> float:
        first, second = (epoch_batches(ld, e)[0][0].float() for e in (0, 1))
        return float((first - second).abs().mean())

    # (Nearly) whole-image crops and no flip: epochs differ by a pixel of offset at most.
    steady = epoch_change(loader(photo_pack, shuffle=False, crop_scale=(1.0, 1.0), hflip=0.0))
    varied = epoch_change(loader(photo_pack, shuffle=False))
    assert steady < 1.0
    assert varied > 5 * steady
    with pytest.raises(ValueError, match="crop_scale"):
        loader(photo_pack, crop_scale=(0.0, 1.0))
