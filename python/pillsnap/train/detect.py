"""The pill detector trainer: ultralytics YOLO, one class ("pill"), on the YOLO view.

    python -m pillsnap.train.detect --cfg configs/demo-det-cpu.yaml
    python -m pillsnap.train.detect train.det.epochs=50 models.detector.arch=yolo11n

(``python -m pillsnap.train train.task=det`` reaches ``train_detector`` as well.)

Reads ``pack.out_dir/yolo/data.yaml`` (written by ``python -m pillsnap.data pack`` or
``... yolo``; written here from the manifest when missing), trains with ``train.det``
(epochs, batch size, patience on mAP@0.5, workers) and writes, in ``run_dir/det`` where
``run_dir = run.out_dir/run.name``:

    best.pt, last.pt   ultralytics checkpoints + the resolved PillSnap config (key "pillsnap")
                       (``train.resume=last`` continues from ultralytics/weights/last.pt,
                       written after every epoch)
    metrics.json       mAP@0.5, mAP@0.5:0.95, precision, recall of best.pt on the val split
    config.yaml        the resolved config
    data.yaml          the dataset description ultralytics read
    ultralytics/       ultralytics' own run folder (results.csv, args.yaml, weights/)
    train.log          this module's log (the CLI only)

Runs offline: no weights, fonts or telemetry are fetched (see ``ultralytics_env``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from pillsnap.cli import run_main
from pillsnap.config.cli import add_config_args, config_from_args, parse_args
from pillsnap.config.features import require
from pillsnap.config.loader import config_hash, save_config
from pillsnap.config.schema import PillsnapConfig
from pillsnap.errors import DataError, ModelError, PillsnapError
from pillsnap.logs import log_decision, setup_logging

logger = logging.getLogger("pillsnap.train.detect")  # not "__main__" under -m

METRIC_NAMES = ("map50", "map50_95", "precision", "recall")


def run_dir(cfg: PillsnapConfig) -> Path:
    """``run.out_dir/run.name``: the classifier writes ``cls/`` there, the detector ``det/``."""
    return Path(cfg.run.out_dir) / cfg.run.name


def train_detector(cfg: PillsnapConfig) -> dict[str, Any]:
    """Train the detector; return {"det_dir", "best", "last", "metrics", ...} (see metrics.json)."""
    require(cfg, "advanced", "detector training (train.task=det)")
    det_dir = run_dir(cfg) / "det"
    det_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, det_dir / "config.yaml")
    data_yaml = _dataset(cfg, det_dir)
    resume = resume_checkpoint(cfg, det_dir)
    if resume is None:
        _set_aside_previous(det_dir / "ultralytics")

    from pillsnap.train.ultralytics_env import prepare_ultralytics

    prepare_ultralytics(det_dir / ".ultralytics", tensorboard=cfg.logging.tensorboard)
    import torch

    from pillsnap.train.det_trainer import Map50Trainer

    device, amp = _device(cfg, torch.cuda.is_available())
    det = cfg.train.det
    started = time.perf_counter()
    if resume is not None:
        from ultralytics import YOLO

        model = YOLO(str(resume))
        model.add_callback("on_fit_epoch_end", _log_epoch)
        # The checkpoint's own arguments (epochs, lr, ...) win; data, device and workers
        # may differ on the machine that continues the run.
        model.train(trainer=Map50Trainer, resume=True, data=str(data_yaml), device=device,
                    workers=det.workers)
    else:
        model, pretrained = _model(cfg)
        model.add_callback("on_fit_epoch_end", _log_epoch)
        if det.max_minutes is not None:
            cap = float(det.max_minutes)
            model.add_callback("on_fit_epoch_end", lambda trainer: trainer.cap_epochs(cap))
        model.train(trainer=Map50Trainer, data=str(data_yaml), epochs=det.epochs,
                    batch=det.batch_size, imgsz=cfg.models.detector.image_size,
                    patience=det.patience, workers=det.workers, device=device, amp=amp,
                    warmup_epochs=det.warmup_epochs,
                    seed=cfg.run.seed, deterministic=cfg.run.deterministic,
                    pretrained=pretrained, project=str(det_dir.resolve()), name="ultralytics",
                    exist_ok=True, plots=False)  # plots need Arial.ttf, a download
    seconds = time.perf_counter() - started
    trainer = model.trainer
    metrics = _metrics(trainer, seconds, device, amp)
    best = _export_checkpoint(Path(trainer.best), det_dir / "best.pt", cfg)
    last = _export_checkpoint(Path(trainer.last), det_dir / "last.pt", cfg)
    (det_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    logger.info("detector: mAP@0.5 %.4f, mAP@0.5:0.95 %.4f, precision %.4f, recall %.4f "
                "(best epoch %s of %s, %.0f s) -> %s", metrics["map50"], metrics["map50_95"],
                metrics["precision"], metrics["recall"], metrics["best_epoch"],
                metrics["epochs_run"], seconds, det_dir)
    return {"det_dir": str(det_dir), "best": str(best), "last": str(last), "metrics": metrics}


def resume_checkpoint(cfg: PillsnapConfig, det_dir: Path) -> Path | None:
    """The checkpoint ``train.resume`` names (``last``: this run's own), checked resumable.

    ultralytics writes ``ultralytics/weights/last.pt`` after every epoch (atomically, see
    ``Map50Trainer.save_model``) and strips its optimizer state when the run ends, so a
    finished run cannot be resumed: that is an error here, not a silent fresh start.
    """
    wanted = cfg.train.resume
    if wanted is None:
        return None
    path = det_dir / "ultralytics" / "weights" / "last.pt" if wanted == "last" else Path(wanted)
    if not path.is_file():
        raise DataError(f"train.resume={wanted}: no detector checkpoint at {path}")
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)  # ultralytics' format
    except Exception as exc:
        raise DataError(f"train.resume={wanted}: {path} cannot be read ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("optimizer") is None or ckpt.get("epoch", -1) < 0:
        raise DataError(f"train.resume={wanted}: {path} is from a finished run (no optimizer "
                        "state); start a new run with another run.name")
    log_decision(logger, "det resume", path, f"continuing after epoch {int(ckpt['epoch']) + 1}")
    return path


def _set_aside_previous(folder: Path) -> None:
    """Keep one earlier run as ``ultralytics.prev``: a rerun must not append to its CSV."""
    if folder.exists():
        previous = folder.with_name(folder.name + ".prev")
        shutil.rmtree(previous, ignore_errors=True)
        folder.rename(previous)
        log_decision(logger, "previous detector run", previous, "kept aside, not overwritten")


def _dataset(cfg: PillsnapConfig, det_dir: Path) -> Path:
    """The YOLO view's data.yaml, re-pointed at where the view is now (it may have moved)."""
    view = Path(cfg.pack.out_dir) / "yolo"
    if not (view / "data.yaml").is_file():
        manifest = Path(cfg.data.manifest_dir)
        if not (manifest / "manifest.jsonl").is_file():
            raise DataError(f"no YOLO view at {view} and no manifest at {manifest} to write one "
                            "from: run python -m pillsnap.data scan, then pack or yolo")
        from pillsnap.data.yolo_view import write_yolo_view

        log_decision(logger, "yolo view", view, f"missing; writing it from {manifest}")
        write_yolo_view(manifest, Path(cfg.data.root), view,
                        image_size=cfg.models.detector.image_size,
                        include_single=cfg.train.det.include_single, workers=cfg.pack.workers)
    for split in ("train", "val"):
        if not any((view / "images" / split).glob("*.jpg")):
            raise DataError(f"the YOLO view {view} has no {split} images (combination photos; "
                            "train.det.include_single=true adds single-pill photos)")
    _check_view_size(view, cfg.models.detector.image_size)
    data = yaml.safe_load((view / "data.yaml").read_text(encoding="utf-8"))
    data["path"] = str(view.resolve())
    out = det_dir / "data.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def _check_view_size(view: Path, image_size: int) -> None:
    report = view / "yolo_report.json"
    if not report.is_file():
        return
    written = json.loads(report.read_text(encoding="utf-8")).get("image_size")
    if written is not None and written != image_size:
        log_decision(logger, "yolo view size", written,
                     f"view written at {written} px, training at {image_size} px; ultralytics "
                     "resizes every image, rewriting the view saves that work", fallback=True)


def _model(cfg: PillsnapConfig) -> tuple[Any, bool]:
    """YOLO from local weights when ``pretrained`` and a file exists, else from the yaml."""
    from ultralytics import YOLO

    det = cfg.models.detector
    name = Path(det.arch.removesuffix(".pt").removesuffix(".yaml")).name
    # a .yaml path is the user's own architecture; otherwise ultralytics' bundled one
    architecture = det.arch if det.arch.endswith(".yaml") else f"{name}.yaml"
    if det.pretrained:
        candidates = [Path(det.arch)] if det.arch.endswith(".pt") else []
        candidates.append(Path(f"{name}.pt"))
        weights = next((p for p in candidates if p.is_file()), None)
        if weights is not None:
            log_decision(logger, "detector weights", weights, "pretrained, found locally")
            return YOLO(str(weights)), True
        if not det.allow_random_init:
            raise ModelError(
                f"models.detector.pretrained=true, but there is no {candidates[-1]} here (the "
                "trainer downloads nothing): put the weights file in the working directory, "
                "set models.detector.allow_random_init=true to train from scratch, or "
                "models.detector.pretrained=false")
        log_decision(logger, "detector weights", architecture,
                     f"pretrained asked but no {candidates[-1]} here (no downloads): training "
                     "from scratch (models.detector.allow_random_init=true)", fallback=True)
    else:
        log_decision(logger, "detector weights", architecture,
                     "models.detector.pretrained=false: from scratch")
    return YOLO(architecture), False


def _device(cfg: PillsnapConfig, cuda: bool) -> tuple[str, bool]:
    if not cuda:
        log_decision(logger, "device", "cpu", "no CUDA device")
        log_decision(logger, "amp", False, "CPU training runs in FP32")
        log_decision(logger, "det workers", 0, "ultralytics loads batches in the main process "
                     f"on CPU; train.det.workers={cfg.train.det.workers} applies on GPU")
        return "cpu", False
    log_decision(logger, "device", "cuda:0", "CUDA available")
    if not cfg.train.amp:
        log_decision(logger, "amp", False, "train.amp=false")
    return "0", cfg.train.amp


def _log_epoch(trainer: Any) -> None:
    from pillsnap.train.det_trainer import MAP50, MAP50_95, PRECISION, RECALL

    m = trainer.metrics or {}
    if MAP50 not in m:
        return
    when = ("best.pt" if getattr(trainer, "in_final_eval", False)
            else f"epoch {trainer.epoch + 1}/{trainer.epochs}")
    logger.info("det %s: mAP@0.5 %.4f, mAP@0.5:0.95 %.4f, P %.4f, R %.4f", when, m[MAP50],
                m[MAP50_95], m[PRECISION], m[RECALL])


def _metrics(trainer: Any, seconds: float, device: str, amp: bool) -> dict[str, Any]:
    """Final metrics: ultralytics re-validates best.pt after training into trainer.metrics."""
    from pillsnap.train.det_trainer import MAP50, MAP50_95, PRECISION, RECALL

    m = trainer.metrics or {}
    values = {name: round(float(m.get(key, 0.0)), 6)
              for name, key in zip(METRIC_NAMES, (MAP50, MAP50_95, PRECISION, RECALL),
                                   strict=True)}
    return {**values, "fitness": "map50", "checkpoint": "best.pt", "split": "val",
            "best_epoch": int(trainer.stopper.best_epoch), "epochs_run": int(trainer.epoch) + 1,
            "epochs": int(trainer.epochs), "seconds": round(seconds, 1),
            "device": "cpu" if device == "cpu" else "cuda:0", "amp": bool(trainer.amp),
            "image_size": int(trainer.args.imgsz), "batch_size": int(trainer.batch_size)}


def _export_checkpoint(source: Path, target: Path, cfg: PillsnapConfig) -> Path:
    """Copy an ultralytics checkpoint, adding the resolved config (runs must be reproducible)."""
    import torch

    if not source.is_file():
        raise PillsnapError(f"ultralytics wrote no checkpoint at {source}")
    ckpt = torch.load(source, map_location="cpu", weights_only=False)  # our own file
    ckpt["pillsnap"] = {"config": cfg.model_dump(mode="json"), "config_hash": config_hash(cfg),
                        "task": "det", "names": {0: "pill"}}
    tmp = target.with_suffix(".pt.tmp")
    torch.save(ckpt, tmp)
    tmp.replace(target)
    return target


def main_det(argv: list[str] | None = None) -> int:
    """``python -m pillsnap.train.detect [--cfg FILE] [section.key=value ...]``."""
    parser = argparse.ArgumentParser(prog="python -m pillsnap.train.detect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    args = parse_args(parser, argv)

    def run() -> int:
        cfg = config_from_args(args)
        require(cfg, "advanced", "detector training (train.task=det)")
        log_file = run_dir(cfg) / "det" / "train.log" if cfg.logging.file else None
        setup_logging(cfg.logging.level, log_file)
        print(json.dumps(train_detector(cfg), indent=2))
        return 0

    return run_main(run, logger)


if __name__ == "__main__":
    sys.exit(main_det())
