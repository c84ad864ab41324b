"""The trainer's inputs: the class index and the train/val packs (packed when missing)."""

from __future__ import annotations

import logging
from pathlib import Path

from pillsnap.config.schema import PillsnapConfig
from pillsnap.data.classes import ClassIndex, training_classes
from pillsnap.errors import ConfigError, DataError
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


def load_classes(cfg: PillsnapConfig) -> ClassIndex:
    """The classes to train (``training_classes``: the index of ``data.manifest_dir`` less
    the excluded K-codes), within ``models.classifier.max_classes``."""
    classes = training_classes(cfg)
    limit = cfg.models.classifier.max_classes
    if len(classes) > limit:
        raise ConfigError(f"the class index has {len(classes)} classes, more than "
                          f"models.classifier.max_classes={limit}; raise the limit or use a "
                          "smaller stage (python -m pillsnap.data stage)")
    return classes


def ensure_packs(cfg: PillsnapConfig, classes: ClassIndex) -> dict[str, Path]:
    """``pack.out_dir``/{train,val}.pack, built from the manifest when missing (rank 0 only:
    callers hold the other ranks at a barrier)."""
    from pillsnap.data.pack import build_pack

    out = Path(cfg.pack.out_dir)
    packs = {split: out / f"{split}.pack" for split in ("train", "val")}
    for split, path in packs.items():
        if path.is_file():
            continue
        log_decision(logger, "pack", split, f"{path} is missing: packing it from "
                     f"{cfg.data.manifest_dir} (region={cfg.pack.region}, "
                     f"short_side={cfg.pack.short_side})")
        p = cfg.pack
        build_pack(Path(cfg.data.manifest_dir), Path(cfg.data.root), path, split=split,
                   short_side=p.short_side, quality=p.jpeg_quality, storage=p.storage,
                   region=p.region, margin=p.pill_margin, workers=p.workers, classes=classes)
    return packs


def check_pack(path: Path, classes: ClassIndex) -> None:
    """A pack built from another class index would train on shuffled labels: refuse it."""
    from pillsnap.native import _native

    header = _native.PackReader(str(path)).header()
    if header["class_hash"] != classes.hash:
        raise DataError(f"{path} was packed for class index {header['class_hash']}, but "
                        f"{classes.hash} is loaded; repack it (delete it and train again)")
