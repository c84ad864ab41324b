"""What the demo generates and how it trains: the demo configs plus a size profile.

The training settings are the repository's demo configs, ``configs/demo-cpu.yaml`` (the
classifier) and ``configs/demo-det-cpu.yaml`` (the detector), merged into one config with
every path under the demo folder; that config is saved as ``<out>/config.yaml``, so each
stage can be rerun by hand (``python -m pillsnap.train --cfg demo_run/config.yaml``).
Profile ``quick`` (CI) shrinks data and epochs so the whole job fits in a few minutes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pillsnap
from pillsnap.config import PillsnapConfig, load_config, save_config
from pillsnap.config.loader import read_yaml, set_dotted
from pillsnap.data.synth import SynthSpec
from pillsnap.errors import ConfigError

CONFIGS = Path(pillsnap.__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class Profile:
    synth: SynthSpec
    overrides: tuple[str, ...]  # dotted config keys over the demo configs


PROFILES = {
    # the demo configs as they are (docs/benchmarks.md has their measured results)
    "full": Profile(SynthSpec(classes=12, train_per_class=240, val_per_class=20,
                              combo_train=120, combo_val=30, width=488, height=640, seed=0),
                    ()),
    # CI: 4 drugs that each look different (no look-alike groups: too few epochs to learn
    # imprints), small photos, short training; still real training and real answers
    "quick": Profile(SynthSpec(classes=4, train_per_class=30, val_per_class=5,
                               combo_train=64, combo_val=8, pills_per_combo=(2, 3),
                               width=244, height=320, seed=0, lookalikes=False),
                     ("train.epochs=6", "models.classifier.image_size=64",
                      "pack.short_side=96", "models.detector.image_size=224",
                      "train.det.epochs=100", "train.det.batch_size=8",
                      "train.det.patience=20", "train.det.warmup_epochs=1")),
}


def demo_config(out: Path, profile: str, extra: tuple[str, ...] = ()) -> PillsnapConfig:
    """The demo configs merged, pointed at ``out``, with the profile's and ``extra`` keys."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown demo profile {profile!r}; choose one of "
                          f"{', '.join(PROFILES)}")
    for name in ("demo-cpu.yaml", "demo-det-cpu.yaml"):
        if not (CONFIGS / name).is_file():
            raise ConfigError(f"the demo needs {CONFIGS / name}: run it from a checkout of "
                              "the repository (./scripts/demo.sh)")
    raw: dict[str, Any] = copy.deepcopy(read_yaml(CONFIGS / "demo-cpu.yaml"))
    det = read_yaml(CONFIGS / "demo-det-cpu.yaml")
    raw["models"]["detector"] = det["models"]["detector"]
    raw.setdefault("train", {})["det"] = det["train"]["det"]
    raw["active_feature_set"] = "advanced"  # the combo pipeline needs the detector
    for key, value in {"run.out_dir": out / "runs", "run.name": "demo",
                       "data.root": out / "dataset", "data.manifest_dir": out / "manifest",
                       "pack.out_dir": out / "packs", "export.out_dir": out / "export",
                       "triton.repository": out / "triton_models"}.items():
        set_dotted(raw, key, str(value))
    path = out / "config.base.yaml"
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    cfg = load_config(path, [*PROFILES[profile].overrides, *extra], env_file=None, environ={})
    path.unlink()
    save_config(cfg, out / "config.yaml")
    return cfg
