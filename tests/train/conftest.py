"""A tiny synthetic dataset, its manifest and packs (built once), and small run configs.

Sizes are chosen for speed on 2 CPU cores: 4 classes, 32 px inputs, timm's test models.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pillsnap.config import PillsnapConfig, load_config
from pillsnap.data.pack import build_pack
from pillsnap.data.scan import scan
from pillsnap.data.synth import SynthSpec, generate

TINY = SynthSpec(classes=4, train_per_class=8, val_per_class=4, combo_train=0, combo_val=0,
                 width=244, height=320, seed=11)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Dataset root, manifest and packs (pill crops, short side 40): read-only for tests."""
    base = tmp_path_factory.mktemp("cls_data")
    root, manifest, packs = base / "aihub", base / "manifest", base / "packs"
    generate(root, TINY, workers=1)
    scan(root, manifest, workers=1)
    for split in ("train", "val"):
        build_pack(manifest, root, packs / f"{split}.pack", split=split, short_side=40,
                   region="pill", workers=1)
    return {"root": root, "manifest": manifest, "packs": packs}


def tiny_overrides(data: dict[str, Path], out: Path) -> list[str]:
    return [
        "active_feature_set=mvp",
        f"data.root={data['root']}", f"data.manifest_dir={data['manifest']}",
        f"pack.out_dir={data['packs']}", f"run.out_dir={out}", "run.name=t",
        "models.classifier.arch=test_efficientnet", "models.classifier.image_size=32",
        "models.classifier.pretrained=false", "train.epochs=1", "train.batch_size=8",
        "train.compile=none", "train.auto_batch.enabled=false", "train.ema.warmup_steps=2",
        "dataloader.threads=1", "dataloader.autotune=false", "cache.policy=none",
        "logging.log_every_steps=1", "logging.tensorboard=false",
    ]


@pytest.fixture
def tiny_args(tiny_data: dict[str, Path], in_tmp: Path) -> list[str]:
    """The tiny run as command-line overrides (for subprocess runs), writing to ./runs/t."""
    return tiny_overrides(tiny_data, in_tmp / "runs")


@pytest.fixture
def make_cfg(tiny_data: dict[str, Path], in_tmp: Path) -> Callable[..., PillsnapConfig]:
    """``make_cfg("train.amp=true", ...)``: the tiny run config plus overrides."""

    def make(*extra: str) -> PillsnapConfig:
        return load_config(None, [*tiny_overrides(tiny_data, in_tmp / "runs"), *extra],
                           env_file=None, environ={})

    return make
