"""The ultralytics detection trainer, with mAP@0.5 as its fitness and an offline AMP check.

Imports ultralytics at module level: import this module only after
``pillsnap.train.ultralytics_env.prepare_ultralytics`` (``pillsnap.train.detect`` does).

Fitness: ultralytics 8.4 ranks epochs by mAP@0.5:0.95 (older releases by
0.1*mAP@0.5 + 0.9*mAP@0.5:0.95). That one number drives both early stopping
(``EarlyStopping(epoch, fitness)``) and which checkpoint becomes ``best.pt``
(``best_fitness == fitness``). PillSnap's target is mAP@0.5 (``targets.combo_map50``), so
``validate`` (the one place the trainer turns validation metrics into fitness) returns
mAP@0.5 instead; everything downstream follows it unchanged. Passing the class as
``YOLO.train(trainer=...)`` is ultralytics' documented way to customise training.

AMP: on CUDA ultralytics' ``check_amp`` loads ``yolo26n.pt`` (downloading it when absent) to
compare FP32 and AMP outputs. Offline that download cannot happen and the error path is not
guaranteed to be caught, so the check is replaced for the duration of ``_setup_train`` by a
decision: AMP as ``train.amp`` says (off on the GPUs ultralytics lists as giving NaN losses
with it), one log line, no network.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import ultralytics.engine.trainer as trainer_module
from ultralytics.models.yolo.detect import DetectionTrainer

from pillsnap.logs import log_decision
from pillsnap.train.timecap import epochs_that_fit, log_cap

logger = logging.getLogger(__name__)

MAP50 = "metrics/mAP50(B)"
MAP50_95 = "metrics/mAP50-95(B)"
PRECISION = "metrics/precision(B)"
RECALL = "metrics/recall(B)"


# ultralytics' own list of GPUs whose AMP gives NaN losses (checked before its download)
_AMP_BAD_GPU = re.compile(
    r"(nvidia|geforce|quadro|tesla).*?(1660|1650|1630|t400|t550|t600|t1000|t1200|t2000|k40m)",
    re.IGNORECASE)


def _amp_without_download(model: Any) -> bool:
    device = next(model.parameters()).device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if _AMP_BAD_GPU.search(name):
            log_decision(logger, "amp", False, f"{name} is known to give NaN losses with AMP",
                         fallback=True)
            return False
    log_decision(logger, "amp", True,
                 "ultralytics' AMP self-check downloads yolo26n.pt; skipped offline "
                 "(set train.amp=false if losses turn NaN)")
    return True


class Map50Trainer(DetectionTrainer):
    """DetectionTrainer whose fitness (early stopping, best.pt) is mAP@0.5."""

    def validate(self) -> tuple[dict[str, float] | None, float | None]:
        previous_best = self.best_fitness
        metrics, fitness = super().validate()
        if metrics is None or MAP50 not in metrics:
            return metrics, fitness  # no validation this epoch: keep ultralytics' behaviour
        fitness = float(metrics[MAP50])
        # super() compared its own fitness with best_fitness; redo it with ours
        if previous_best is None or fitness > previous_best:
            self.best_fitness = fitness
        else:
            self.best_fitness = previous_best
        return metrics, fitness

    def cap_epochs(self, max_minutes: float) -> None:
        """``train.det.max_minutes``, after an epoch (an ``on_fit_epoch_end`` callback): cut
        the planned epochs to what fits at the pace so far, and rebuild the learning-rate
        schedule for them as ultralytics' own ``time`` mode does (which, unlike a cap,
        also extends a run that is ahead of time)."""
        if getattr(self, "in_final_eval", False) or self.stop:
            return
        done = self.epoch + 1
        elapsed = time.time() - self.train_time_start
        run = done - self.start_epoch
        total = epochs_that_fit(elapsed_s=elapsed, epochs_run=run, epochs_done=done,
                                planned=self.epochs, max_minutes=max_minutes)
        if total >= self.epochs:
            return
        log_cap(logger, "train.det.epochs", total, planned=self.epochs, per_epoch_s=elapsed / run,
                max_minutes=max_minutes)
        self.epochs = self.args.epochs = total
        self._setup_scheduler()
        self.scheduler.last_epoch = self.epoch
        self.stop = done >= total

    def final_eval(self) -> None:
        # ultralytics reports best.pt's re-validation through on_fit_epoch_end as epoch N+1;
        # the flag lets the epoch logger name it for what it is
        self.in_final_eval = True
        super().final_eval()

    def _setup_train(self) -> None:
        with mock.patch.object(trainer_module, "check_amp", _amp_without_download):
            super()._setup_train()

    def save_model(self) -> None:
        """ultralytics writes last.pt/best.pt in place; a kill mid-write would leave a torn
        file that ``train.resume=last`` cannot load. Write beside them, then rename."""
        final: tuple[Path, Path] = (self.last, self.best)
        self.last, self.best = (p.with_name(p.name + ".tmp") for p in final)
        try:
            super().save_model()
        finally:
            written = (self.last, self.best)
            self.last, self.best = final
        for tmp, target in zip(written, final, strict=True):
            if tmp.exists():
                tmp.replace(target)
