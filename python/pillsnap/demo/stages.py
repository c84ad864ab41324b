"""The demo's build stages: data, training, export. Each is the package's own entry point
(the same functions the CLI commands call), so the demo exercises what users run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pillsnap.config import PillsnapConfig
from pillsnap.data.synth import SynthSpec


def make_data(cfg: PillsnapConfig, spec: SynthSpec, workers: int) -> dict[str, Any]:
    """Synthetic AIHub tree -> manifest -> train/val packs (pill crops) + the YOLO view."""
    from pillsnap.data.classes import training_classes
    from pillsnap.data.pack import build_pack
    from pillsnap.data.scan import scan
    from pillsnap.data.synth import generate
    from pillsnap.data.yolo_view import write_yolo_view

    root, manifest = Path(cfg.data.root), Path(cfg.data.manifest_dir)
    packs = Path(cfg.pack.out_dir)
    synth = generate(root, spec, workers=workers)
    result = scan(root, manifest, workers=workers)
    p = cfg.pack
    classes = training_classes(cfg)  # the held-out drugs left out
    records = {split: build_pack(manifest, root, packs / f"{split}.pack", split=split,
                                 short_side=p.short_side, quality=p.jpeg_quality,
                                 storage=p.storage, region=p.region, margin=p.pill_margin,
                                 workers=workers, classes=classes)["records"]
               for split in ("train", "val")}
    view = write_yolo_view(manifest, root, packs / "yolo",
                           image_size=cfg.models.detector.image_size, workers=workers)
    return {"images": synth.images, "pills": synth.pills, "classes": synth.classes,
            "manifest_rows": result.report.get("images"), "pack_records": records,
            "yolo_images": view["images"]}


def train_both(cfg: PillsnapConfig) -> dict[str, Any]:
    from pillsnap.train.classifier import train_classifier
    from pillsnap.train.detect import train_detector

    cls = train_classifier(cfg)
    det = train_detector(cfg)
    return {"classifier": {k: cls.get(k) for k in ("top1", "top5", "macro_f1", "epoch")},
            "detector": {k: det["metrics"][k] for k in ("map50", "map50_95")},
            "det_best": det["best"]}


def export_both(cfg: PillsnapConfig, det_best: str) -> dict[str, Any]:
    """ONNX + parity for both models, then the Triton repository from that export."""
    from pillsnap.export.run import export_all
    from pillsnap.export.triton.repository import write_repository

    export = Path(cfg.export.out_dir)
    record = export_all(cfg, Path(cfg.run.out_dir) / cfg.run.name / "best.pt", export,
                        det_ckpt=Path(det_best))
    write_repository(export, Path(cfg.triton.repository), cfg.triton, cfg.serve)
    return {"export": str(export), "triton": str(cfg.triton.repository),
            "classifier_parity_mse": record["classifier"]["parity"]["mse"],
            "detector_parity_iou": record["detector"]["parity"]["matched_iou_min"]}
