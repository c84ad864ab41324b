"""One epoch end to end on the CPU: the fallbacks a user sees, the files a run leaves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from pillsnap.config import PillsnapConfig
from pillsnap.data.loader import PackLoader
from pillsnap.data.prefetch import DevicePrefetcher
from pillsnap.errors import ConfigError
from pillsnap.train.__main__ import dispatch
from pillsnap.train.checkpoint import load_checkpoint
from pillsnap.train.classifier import train_classifier
from pillsnap.train.metrics import summarise
from pillsnap.train.model import create_classifier
from pillsnap.train.openset import gallery_from_state
from pillsnap.train.recipe import recipe_of


def _refuse_compile(*args: object, **kwargs: object) -> None:
    raise RuntimeError("no C++ compiler for inductor (test)")


def test_one_epoch_logs_cpu_fallbacks_and_writes_reloadable_checkpoints(
        make_cfg: Callable[..., PillsnapConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "compile", _refuse_compile)
    cfg = make_cfg("train.amp=true", "train.compile=default", "train.auto_batch.enabled=true",
                   "train.cuda_graphs=true", "train.grad_checkpointing=true",
                   "logging.tensorboard=true", "serve.api_keys=[secret-key]")
    metrics = train_classifier(cfg)
    run = Path(cfg.run.out_dir) / cfg.run.name
    log = (run / "train.log").read_text(encoding="utf-8")
    # No CUDA is normal: what automatic settings chose is a decision; only what this config
    # explicitly asked for (cuda_graphs=true) or what failed (compile) is a fallback.
    for line in ("decision: device=cpu", "decision: amp=fp32", "decision: tf32=False",
                 "fallback: compile=eager", "fallback: cuda_graphs=False",
                 "decision: optimizer=adamw-foreach", "decision: auto_batch=8",
                 "decision: grad_checkpointing=True", "decision: prefetch=cpu",
                 "decision: dataloader.pin_memory=False"):
        assert log.count(line) == 1, line
    for what in ("device=cpu", "amp=fp32", "tf32=False", "dataloader.pin_memory=False"):
        assert f"fallback: {what}" not in log, what
    assert "step 1 epoch 0 loss=" in log and "throughput=" in log and "cuda_mem=0" in log
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "advisor.json").is_file() and (run / "eval_report.json").is_file()
    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(run / name)
        assert state["epoch"] == 0 and state["step"] == 4  # 32 train crops / batch 8
        assert state["classes"]["k_codes"] and len(state["classes"]["hash"]) == 16
        assert state["recipe"]["temperature"] > 0 and state["ema"] is not None
        saved = yaml.safe_load(state["config"])
        assert saved["serve"]["api_keys"] == ["<redacted>"]
        assert {"optimizer", "scheduler", "scaler"} <= state.keys()
    # The saved EMA weights reproduce the reported accuracy in a fresh model.
    state = load_checkpoint(run / "best.pt")
    model = create_classifier(cfg.models.classifier, len(state["classes"]["k_codes"]))
    model.load_state_dict(state["ema"])
    model.eval()
    logits, labels = [], []
    loader = PackLoader(Path(cfg.pack.out_dir) / "val.pack", batch_size=8, image_size=32,
                        train=False, threads=1)
    with torch.no_grad():
        for images, y in DevicePrefetcher(loader, "cpu"):
            logits.append(model(images))
            labels.append(y)
    again = summarise(torch.cat(logits), torch.cat(labels), tuple(state["classes"]["k_codes"]))
    assert again["top1"] == pytest.approx(metrics["top1"])
    assert state["metrics"]["top1"] == pytest.approx(metrics["top1"])
    assert {"top1", "top5", "macro_f1", "per_class", "most_confused", "ece_before",
            "ece_after"} <= metrics.keys()


def test_both_runs_the_classifier_then_the_detector(
        make_cfg: Callable[..., PillsnapConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    from pillsnap.train import classifier, detect

    calls: list[str] = []
    monkeypatch.setattr(classifier, "train_classifier", lambda cfg: calls.append("cls"))
    monkeypatch.setattr(detect, "train_detector", lambda cfg: calls.append("det"))
    dispatch(make_cfg("active_feature_set=advanced", "train.task=both"))
    assert calls == ["cls", "det"]
    calls.clear()
    dispatch(make_cfg("active_feature_set=advanced", "train.task=det"))
    assert calls == ["det"]

    # under torchrun every rank would train its own detector: refused before any training
    calls.clear()
    monkeypatch.setenv("WORLD_SIZE", "2")
    for task in ("both", "det"):
        with pytest.raises(ConfigError, match="without it"):
            dispatch(make_cfg("active_feature_set=advanced", f"train.task={task}"))
    assert calls == []


def test_a_time_cap_cuts_the_epochs_and_the_schedule_follows(
        make_cfg: Callable[..., PillsnapConfig]) -> None:
    """train.max_minutes smaller than one epoch: the run stops after its first epoch, with
    the schedule shortened to that one epoch, and says so in one line. The checkpoints carry
    the open-set thresholds that export turns into the served ``unknown`` flag."""
    cfg = make_cfg("train.epochs=3", "train.max_minutes=0.0001")
    train_classifier(cfg)
    run = Path(cfg.run.out_dir) / cfg.run.name
    log = (run / "train.log").read_text(encoding="utf-8")
    assert log.count("decision: train.epochs=1 (3 planned epochs take about") == 1
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 0 and state["scheduler"]["epochs"] == 1.0
    # every evaluation fits the logit scores' thresholds (max_logit serves until then);
    # after the last epoch best.pt also gets the gallery of feature statistics and the
    # served Mahalanobis score's threshold
    recipe = recipe_of(state)
    assert recipe.open_set is not None and recipe.open_set.score == "max_logit"
    assert set(recipe.open_set.thresholds) == {"msp", "max_logit", "energy"}
    assert state.get("gallery") is None
    best_state = load_checkpoint(run / "best.pt")
    best = recipe_of(best_state).open_set
    assert best is not None and best.score == "mahalanobis" and best.tar == 0.95
    assert set(best.thresholds) == {"msp", "max_logit", "energy", "mahalanobis"}
    assert best.distance_temperature > 0
    gallery = gallery_from_state(best_state, recipe.k_codes)
    assert gallery.k_codes == recipe.k_codes and gallery.dim == gallery.means.shape[1]
    assert int(gallery.counts.sum()) == 32  # every training crop of the tiny pack
