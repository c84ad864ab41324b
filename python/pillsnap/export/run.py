"""One export folder holds everything a server needs (``python -m pillsnap.export``).

    OUT/recipe.json                   the serving recipe (also in the classifier's metadata)
    OUT/gallery.npz                   class statistics; drugs enrolled later join it
    OUT/drugs.json                    the drug table of the classifier's K-codes
    OUT/classifier/model.onnx         + parity_report.json
    OUT/classifier/model.int8.onnx    + int8_report.json (with --quantize int8)
    OUT/detector/model.onnx           + parity_report.json (with --det-ckpt)
    OUT/export.json                   what is here: files, versions, parity (written last)

The recipe is written once, after the open-set threshold was set again on the exported
pipeline's own crops (``pillsnap.export.open_set``). ``export.json`` comes last: a folder
without it is an unfinished export.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pillsnap.config.schema import PillsnapConfig
from pillsnap.contract.gallery import GALLERY_FILE
from pillsnap.contract.recipe import Detector, Recipe
from pillsnap.data.drugs import load_drugs, save_drugs, subset_drugs
from pillsnap.errors import DataError
from pillsnap.export.checkpoint import ClassifierCheckpoint, load_classifier_checkpoint
from pillsnap.export.classifier import check_open_set, export_classifier, model_metadata
from pillsnap.export.cls_parity import classifier_parity
from pillsnap.export.metadata import write_recipe
from pillsnap.export.report import write_report
from pillsnap.infer.bundle import (
    CLASSIFIER_FILE,
    DETECTOR_FILE,
    DRUGS_FILE,
    EXPORT_FILE,
    load_bundle,
)

logger = logging.getLogger(__name__)

INT8_REPORT = "int8_report.json"
FORMAT = 2


def export_all(cfg: PillsnapConfig, ckpt: Path, out: Path, *, det_ckpt: Path | None = None,
               val_pack: Path | None = None, det_data: Path | None = None,
               manifest: Path | None = None, quantize: str | None = None) -> dict[str, Any]:
    """Export, check parity, copy the tables, set the served threshold, write the recipe;
    return what ``export.json`` records.

    ``quantize="int8"`` adds ``classifier/model.int8.onnx`` and its report (see int8.py).
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPORT_FILE).unlink(missing_ok=True)  # unfinished until rewritten
    ck = load_classifier_checkpoint(ckpt)
    check_open_set(ck)
    version, record = _classifier(cfg, ck, out, val_pack)
    if quantize == "int8":
        record["int8"] = _int8(cfg, ck, out, val_pack)
    records: dict[str, Any] = {"format": FORMAT, "recipe": "recipe.json", "classifier": record}
    records["drugs"] = _drugs(ck, out, manifest)
    recipe = _served_rule(ck)
    records["gallery"] = _gallery(ck, out)
    records["detector"] = None
    if det_ckpt is not None:
        records["detector"], detector = _detector(cfg, det_ckpt, out, det_data)
        recipe = recipe.replace(detector=detector)
    recipe = _served_threshold(cfg, ck, out, recipe, manifest)
    write_recipe(out, recipe, model_metadata(ck, version))
    records["pipelines"] = ["single", "combo"] if det_ckpt is not None else ["single"]
    (out / EXPORT_FILE).write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    logger.info("export complete: %s (pipelines: %s)", out, ", ".join(records["pipelines"]))
    return records


def _served_rule(ck: ClassifierCheckpoint) -> Recipe:
    """The checkpoint's recipe, its feature score swapped for ``max_logit`` when the class
    statistics are missing (``check_open_set`` said so)."""
    rule = ck.recipe.open_set
    if rule is None or ck.gallery is not None or rule.score != "mahalanobis":
        return ck.recipe
    if "max_logit" not in rule.thresholds:
        return ck.recipe.replace(open_set=None)
    return ck.recipe.replace(open_set=type(rule)(
        score="max_logit", threshold=rule.thresholds["max_logit"], tar=rule.tar,
        thresholds={k: v for k, v in rule.thresholds.items() if k != "mahalanobis"},
        fitted_on=rule.fitted_on, samples=rule.samples))


def _gallery(ck: ClassifierCheckpoint, out: Path) -> str | None:
    path = out / GALLERY_FILE
    if ck.gallery is None:
        path.unlink(missing_ok=True)  # another export's, left in the folder
        return None
    ck.gallery.save(path, keep_history=False)
    return GALLERY_FILE


def _served_threshold(cfg: PillsnapConfig, ck: ClassifierCheckpoint, out: Path,
                      recipe: Recipe, manifest: Path | None) -> Recipe:
    """The open-set rule set again on the exported pipeline's own crops (the folder is not
    finished yet: the pipeline gets the recipe in hand), and the gallery's served spread
    written; see ``pillsnap.export.open_set``."""
    from pillsnap.export.open_set import calibrate_served
    from pillsnap.infer.pipeline import OnnxPipeline

    if recipe.open_set is None or cfg.export.open_set_photos == 0:
        return recipe
    folder = manifest or Path(ck.setting("data.manifest_dir", "artifacts/manifest"))
    root = Path(ck.setting("data.root", "data/aihub"))
    pipe = OnnxPipeline(load_bundle(out, recipe=recipe))
    done = calibrate_served(pipe, folder, root, photos=cfg.export.open_set_photos)
    if done is None:
        return recipe
    if done.gallery is not None:
        done.gallery.save(out / GALLERY_FILE, keep_history=False)
    return done.recipe


def _classifier(cfg: PillsnapConfig, ck: ClassifierCheckpoint, out: Path,
                val_pack: Path | None) -> tuple[str, dict[str, Any]]:
    folder = out / "classifier"
    path = out / CLASSIFIER_FILE
    version = export_classifier(ck, path, opset=cfg.export.opset,
                                dynamic_batch=cfg.export.dynamic_batch)
    pack = val_pack or Path(ck.setting("pack.out_dir", "artifacts/pack")) / "val.pack"
    report = classifier_parity(ck, path, pack, samples=cfg.export.parity.samples,
                               max_mse=cfg.export.parity.cls_max_mse)
    write_report(folder, report)
    return version, {"file": CLASSIFIER_FILE, "checkpoint": str(ck.path),
                     "model_version": version, "weights": ck.weights, "epoch": ck.epoch,
                     "parity": {k: report[k] for k in ("mse", "top1_agreement", "samples")}}


def _int8(cfg: PillsnapConfig, ck: ClassifierCheckpoint, out: Path,
          val_pack: Path | None) -> dict[str, Any]:
    from pillsnap.export.int8 import quantize_classifier

    packs = Path(ck.setting("pack.out_dir", "artifacts/pack"))
    report = quantize_classifier(
        out / CLASSIFIER_FILE, calibration_pack=packs / "train.pack",
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


def _drugs(ck: ClassifierCheckpoint, out: Path, manifest: Path | None) -> str:
    """drugs.json: the drug table's rows of the classifier's K-codes."""
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
    save_drugs(drugs, out / DRUGS_FILE)
    return DRUGS_FILE


def _detector(cfg: PillsnapConfig, det_ckpt: Path, out: Path,
              det_data: Path | None) -> tuple[dict[str, Any], Detector]:
    from pillsnap.export.det_parity import detector_parity
    from pillsnap.export.detector import (
        detector_version,
        export_detector,
        load_detector_checkpoint,
    )

    folder = out / "detector"
    ck = load_detector_checkpoint(det_ckpt, home=out / ".ultralytics")
    path = export_detector(ck, out / DETECTOR_FILE, opset=cfg.export.opset)
    data = det_data or (Path(ck.data_yaml) if ck.data_yaml else
                        Path(cfg.pack.out_dir) / "yolo" / "data.yaml")
    parity = cfg.export.parity
    report = detector_parity(ck, path, data, samples=parity.samples,
                             max_map_delta=parity.det_max_map_delta, min_iou=parity.det_min_iou)
    write_report(folder, report)
    record = {"file": DETECTOR_FILE, "checkpoint": str(det_ckpt),
              "model_version": detector_version(ck),
              "parity": {k: report[k] for k in ("map50_delta", "matched_iou_min", "samples")}}
    return record, Detector(size=ck.image_size, conf=ck.conf, iou=ck.iou, max_det=ck.max_det)
