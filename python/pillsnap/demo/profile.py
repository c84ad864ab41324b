"""What the demo generates and how it trains: the demo configs plus a size profile.

The training settings are the repository's demo configs, ``configs/demo-cpu.yaml`` (the
classifier) and ``configs/demo-det-cpu.yaml`` (the detector), merged into one config with
every path under the demo folder; that config is saved as ``<out>/config.yaml``, so each
stage can be rerun by hand (``python -m pillsnap.train --cfg demo_run/config.yaml``).
Profile ``full`` (the default) caps training by time so the whole job fits in about 10
minutes on 2 plain cores; ``lookalike`` runs the demo configs as they are (imprint-only
look-alikes, much longer); ``quick`` (CI) shrinks data and epochs to a few minutes, with
fixed epochs so that its answers do not depend on the machine's speed.
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
    # the evaluation's enrollment measure: held-out drugs enrolled from this many photos each
    enroll: tuple[int, ...] = (1, 5, 10)


# The held-out drugs (never trained on: data.exclude_k_codes lists them) that every profile
# adds: the evaluation at the end of the demo measures whether the answers flag them as
# unknown rather than naming them, then one is enrolled from its training photos
# (holdout_train_per_class) and asked about again.
HOLDOUT = 4
HOLDOUT_TRAIN = 10

PROFILES = {
    # The default: held to about 10 minutes on 2 plain x86 cores (no AVX-512, fp32). Its 12
    # drugs each look different (shape, colour, imprint): a network from scratch learns that
    # in a few CPU minutes, where imprint-only look-alikes take 45,000 training crops
    # (profile lookalike). Time caps cut the epochs where the machine is slow (the schedules
    # follow); a fast CPU or a GPU runs every epoch.
    "full": Profile(SynthSpec(classes=12, train_per_class=120, val_per_class=20,
                              combo_train=120, combo_val=30, width=488, height=640, seed=0,
                              lookalikes=False, holdout_classes=HOLDOUT,
                              holdout_train_per_class=HOLDOUT_TRAIN),
                    ("train.epochs=12", "train.max_minutes=3.5",
                     "models.detector.image_size=224", "train.det.epochs=30",
                     "train.det.batch_size=8", "train.det.warmup_epochs=1",
                     "train.det.max_minutes=3")),
    # The unknown-drug evaluation of look-alikes (issue 21): 90 drugs in look-alike groups,
    # one drug of each of 30 groups held out (each with known twins that differ from it by
    # imprint alone), photographed for training too (to enroll them); fixed epochs
    "openset": Profile(SynthSpec(classes=90, holdout_classes=30, holdout_twins=True,
                                 holdout_train_per_class=10, train_per_class=60,
                                 val_per_class=10, combo_train=60, combo_val=20, width=488,
                                 height=640, seed=1),
                       ("train.epochs=12", "train.max_minutes=null", "train.batch_size=64",
                        "models.detector.image_size=224", "train.det.epochs=30",
                        "train.det.batch_size=8", "train.det.patience=0",
                        "train.det.warmup_epochs=0")),
    # The demo configs as they are: drugs in look-alike groups told apart by imprint alone,
    # 240 training photos per class, 16 epochs (docs/benchmarks.md: top-1 0.979, about 16
    # minutes on 2 cores with AVX512-BF16, far longer without); some held-out drugs are
    # near twins of trained ones
    "lookalike": Profile(SynthSpec(classes=12, train_per_class=240, val_per_class=20,
                                   combo_train=120, combo_val=30, width=488, height=640,
                                   seed=0, holdout_classes=HOLDOUT,
                                   holdout_train_per_class=HOLDOUT_TRAIN), ()),
    # CI: 4 drugs that each look different, small photos, short training; still real
    # training and real answers. Fixed epochs, no time cap: the same answers on a busy or a
    # plain machine (a cap cut the detector to 18 epochs on 2 plain cores: it finds nothing
    # before epoch 15 and reaches mAP@0.5 0.99 by epoch 24; about 3 min there)
    "quick": Profile(SynthSpec(classes=4, train_per_class=30, val_per_class=5,
                               combo_train=64, combo_val=8, pills_per_combo=(2, 3),
                               width=244, height=320, seed=0, lookalikes=False,
                               holdout_classes=2, holdout_train_per_class=6),
                     ("train.epochs=6", "models.classifier.image_size=64",
                      "pack.short_side=96", "models.detector.image_size=224",
                      "train.det.epochs=30", "train.det.batch_size=8",
                      "train.det.patience=0", "train.det.warmup_epochs=0"), enroll=(1, 3)),
}


def held_out(spec: SynthSpec) -> list[str]:
    """The K-codes the profile's data holds out (the generator's draw, known in advance)."""
    from pillsnap.data.synth import build_catalog, choose_holdout

    catalog = build_catalog(spec.classes + spec.holdout_classes, spec.seed,
                            lookalikes=spec.lookalikes)
    return sorted(choose_holdout(catalog, spec.holdout_classes, twins=spec.holdout_twins))


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
    set_dotted(raw, "data.exclude_k_codes", held_out(PROFILES[profile].synth))
    path = out / "config.base.yaml"
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    cfg = load_config(path, [*PROFILES[profile].overrides, *extra], env_file=None, environ={})
    path.unlink()
    save_config(cfg, out / "config.yaml")
    return cfg
