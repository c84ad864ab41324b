"""One export folder holds everything a server needs (``python -m pillsnap.export``).

    OUT/export.json                   what is here: versions, files, preprocessing settings
    OUT/classes.json, OUT/drugs.json  the class index and the drug table of its K-codes
    OUT/classifier/model.onnx         + parity_report.json
    OUT/classifier/model.int8.onnx    + int8_report.json (with --quantize int8)
    OUT/detector/model.onnx           + parity_report.json (with --det-ckpt)

``export.json`` is written last: a folder without it is an unfinished export.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pillsnap.config.schema import PillsnapConfig
from pillsnap.data.classes import ClassIndex
from pillsnap.data.drugs import load_drugs, save_drugs, subset_drugs
from pillsnap.errors import DataError
from pillsnap.export.checkpoint import ClassifierCheckpoint, load_classifier_checkpoint
from pillsnap.export.classifier import classifier_metadata, export_classifier
from pillsnap.export.cls_parity import classifier_parity
from pillsnap.export.metadata import read_metadata
from pillsnap.export.report import write_report

logger = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
MODEL_FILE = "model.onnx"
INT8_REPORT = "int8_report.json"


def export_all(cfg: PillsnapConfig, ckpt: Path, out: Path, *, det_ckpt: Path | None = None,
               val_pack: Path | None = None, det_data: Path | None = None,
               manifest: Path | None = None, quantize: str | None = None) -> dict[str, Any]:
    """Export, check parity, copy the tables; return what ``export.json`` records.

    ``quantize="int8"`` adds ``classifier/model.int8.onnx`` and its report (see int8.py).
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPORT_FILE).unlink(missing_ok=True)  # unfinished until rewritten
    ck = load_classifier_checkpoint(ckpt)
    record: dict[str, Any] = {"format": 1, "classifier": _classifier(cfg, ck, out, val_pack)}
    if quantize == "int8":
        record["classifier"]["int8"] = _int8(cfg, ck, out, val_pack)
    record.update(_tables(ck, out, manifest))
    record["detector"] = (_detector(cfg, det_ckpt, out, det_data)
                          if det_ckpt is not None else None)
    record["pipelines"] = ["single", "combo"] if det_ckpt is not None else ["single"]
    _write_record(out, record)
    served = _open_set_on_served_crops(cfg, ck, out, manifest)
    if served is not None:
        record["classifier"]["open_set"] = served
        _write_record(out, record)
    logger.info("export complete: %s (pipelines: %s)", out, ", ".join(record["pipelines"]))
    return record


def _write_record(out: Path, record: dict[str, Any]) -> None:
    (out / EXPORT_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")


def _open_set_on_served_crops(cfg: PillsnapConfig, ck: ClassifierCheckpoint, out: Path,
                              manifest: Path | None) -> dict[str, Any] | None:
    """The open-set thresholds set again on the exported pipeline's own crops (a finished
    export: the pipeline opens it); see ``pillsnap.export.open_set``."""
    from pillsnap.export.open_set import calibrate_served

    folder = manifest or Path(ck.setting("data.manifest_dir", "artifacts/manifest"))
    root = Path(ck.setting("data.root", "data/aihub"))
    return calibrate_served(out, folder, root, photos=cfg.export.open_set_photos)


def _classifier(cfg: PillsnapConfig, ck: ClassifierCheckpoint, out: Path,
                val_pack: Path | None) -> dict[str, Any]:
    folder = out / "classifier"
    path = export_classifier(ck, folder / MODEL_FILE, opset=cfg.export.opset,
                             dynamic_batch=cfg.export.dynamic_batch)
    pack = val_pack or Path(ck.setting("pack.out_dir", "artifacts/pack")) / "val.pack"
    report = classifier_parity(ck, path, pack, samples=cfg.export.parity.samples,
                               max_mse=cfg.export.parity.cls_max_mse)
    write_report(folder, report)
    meta = classifier_metadata(ck, read_metadata(path)["model_version"])
    return {"file": f"classifier/{MODEL_FILE}", "checkpoint": str(ck.path),
            "parity": {k: report[k] for k in ("mse", "top1_agreement", "samples")},
            **{k: v for k, v in meta.items() if k not in ("k_codes", "input", "output")}}


def _int8(cfg: PillsnapConfig, ck: ClassifierCheckpoint, out: Path,
          val_pack: Path | None) -> dict[str, Any]:
    from pillsnap.export.int8 import quantize_classifier

    packs = Path(ck.setting("pack.out_dir", "artifacts/pack"))
    report = quantize_classifier(
        out / "classifier" / MODEL_FILE, calibration_pack=packs / "train.pack",
        val_pack=val_pack or packs / "val.pack", image_size=ck.image_size,
        calibration_images=cfg.export.int8_calibration_images,
        eval_samples=max(cfg.export.parity.samples, 256), temperature=ck.temperature)
    (out / "classifier" / INT8_REPORT).write_text(json.dumps(report, indent=2) + "\n",
                                                   encoding="utf-8")
    if report["top1_agreement"] < 0.98:
        logger.warning("the INT8 classifier disagrees with FP32 on %.1f%% of val crops; keep "
                       "serving FP32 (details in %s)", 100 * (1 - report["top1_agreement"]),
                       out / "classifier" / INT8_REPORT)
    return {"file": f"classifier/{report['int8']['file']}", "top1_change": report["top1_change"],
            "top1_agreement": report["top1_agreement"],
            "speedup_batch1": report["speedup_batch1"],
            "speedup_batch16": report["speedup_batch16"]}


def _tables(ck: ClassifierCheckpoint, out: Path, manifest: Path | None) -> dict[str, str]:
    """classes.json (from the checkpoint) and the drug table rows of its K-codes."""
    ClassIndex(ck.k_codes).save(out / "classes.json")
    folder = manifest or Path(ck.setting("data.manifest_dir", "artifacts/manifest"))
    if not (folder / "drugs.json").is_file():
        raise DataError(f"no drug table at {folder / 'drugs.json'} (written by python -m "
                        "pillsnap.data scan); pass --manifest DIR")
    drugs = subset_drugs(load_drugs(folder), ck.k_codes)
    missing = [c for c in ck.k_codes if c not in drugs]
    if missing:
        logger.warning("drug table %s lacks %d of %d K-codes (e.g. %s): their answers carry "
                       "no names or EDI codes", folder, len(missing), len(ck.k_codes),
                       missing[:3])
    save_drugs(drugs, out / "drugs.json")
    return {"classes": "classes.json", "drugs": "drugs.json", "class_hash": ck.class_hash}


def _detector(cfg: PillsnapConfig, det_ckpt: Path, out: Path,
              det_data: Path | None) -> dict[str, Any]:
    from pillsnap.export.det_parity import detector_parity
    from pillsnap.export.detector import export_detector, load_detector_checkpoint

    folder = out / "detector"
    ck = load_detector_checkpoint(det_ckpt, home=out / ".ultralytics")
    path = export_detector(ck, folder / MODEL_FILE, opset=cfg.export.opset)
    data = det_data or (Path(ck.data_yaml) if ck.data_yaml else
                        Path(cfg.pack.out_dir) / "yolo" / "data.yaml")
    parity = cfg.export.parity
    report = detector_parity(ck, path, data, samples=parity.samples,
                             max_map_delta=parity.det_max_map_delta, min_iou=parity.det_min_iou)
    write_report(folder, report)
    meta = read_metadata(path)
    return {"file": f"detector/{MODEL_FILE}", "checkpoint": str(det_ckpt),
            "model_version": meta["model_version"], "image_size": ck.image_size,
            "conf_threshold": ck.conf, "iou_threshold": ck.iou, "max_detections": ck.max_det,
            "parity": {k: report[k] for k in ("map50_delta", "matched_iou_min", "samples")}}
