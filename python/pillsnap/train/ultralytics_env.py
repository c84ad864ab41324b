"""Ultralytics, offline and contained: no downloads, no telemetry, nothing written to ``~``.

Call ``prepare_ultralytics(home)`` before anything imports ``ultralytics``:

    from pillsnap.train.ultralytics_env import prepare_ultralytics
    prepare_ultralytics(run_dir / "det" / ".ultralytics", tensorboard=False)

Why each setting (ultralytics 8.4):
- ``YOLO_OFFLINE=1``: ultralytics resolves two DNS names at import time to decide whether it
  is online; offline it skips telemetry, update checks and hub calls.
- ``YOLO_AUTOINSTALL=false``: a missing optional requirement must be an error, not a pip run.
- ``YOLO_CONFIG_DIR``: on import ultralytics creates ``settings.json`` (and later fonts) under
  ``~/.config/Ultralytics``; pointing it into the run folder keeps runs self-contained. The
  directory is read when ``ultralytics`` is first imported, so a process that imported it
  earlier keeps its old settings file (logged as a fallback).
- fonts: ultralytics' ``check_font`` probes GitHub for Arial.ttf whenever it reads a
  dataset, plots or not; it is replaced by a local-only lookup (the run uses no plots).
- settings: ``sync`` off (telemetry), the experiment trackers off (mlflow would write
  ``./mlruns``), tensorboard as ``logging.tensorboard`` says, and the datasets/weights/runs
  folders inside ``home`` so nothing lands in the working directory by default.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)

_OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
_TRACKERS = ("clearml", "comet", "dvc", "mlflow", "raytune", "wandb")


def prepare_ultralytics(home: Path, *, tensorboard: bool) -> None:
    """Set the environment and settings above; safe to call more than once per process."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    for name, value in _OFFLINE_ENV.items():
        if name not in os.environ:  # a user's explicit choice wins
            os.environ[name] = value
    already = "ultralytics" in sys.modules
    if already:
        from ultralytics.utils import USER_CONFIG_DIR

        log_decision(logger, "ultralytics settings dir", USER_CONFIG_DIR,
                     "ultralytics was imported earlier in this process", fallback=True)
    elif "YOLO_CONFIG_DIR" in os.environ:
        log_decision(logger, "ultralytics settings dir", os.environ["YOLO_CONFIG_DIR"],
                     "YOLO_CONFIG_DIR set by the user")
    else:
        os.environ["YOLO_CONFIG_DIR"] = str(home)
        log_decision(logger, "ultralytics settings dir", home, "inside the run, not ~/.config")
    from ultralytics import settings

    settings.update({"sync": False, "tensorboard": tensorboard,
                     "datasets_dir": str(home / "datasets"), "weights_dir": str(home / "weights"),
                     "runs_dir": str(home / "runs"), **dict.fromkeys(_TRACKERS, False)})
    _fonts_local_only()


def _local_font(font: str = "Arial.ttf") -> Path | str | None:
    """``check_font`` without its download: the copy in the settings dir, a system font, or None."""
    from matplotlib import font_manager
    from ultralytics.utils import USER_CONFIG_DIR

    name = Path(font).name
    if (USER_CONFIG_DIR / name).exists():
        return USER_CONFIG_DIR / name
    return next((f.fname for f in font_manager.fontManager.ttflist
                 if name in f.fname and os.path.exists(f.fname)), None)


def _fonts_local_only() -> None:
    import ultralytics.data.utils
    import ultralytics.utils.checks
    import ultralytics.utils.plotting

    # each module holds its own reference (``from ... import check_font``): replace them all
    for module in (ultralytics.utils.checks, ultralytics.data.utils, ultralytics.utils.plotting):
        module.check_font = _local_font  # type: ignore[attr-defined]
    log_decision(logger, "ultralytics fonts", "local only",
                 "its Arial.ttf download is a network call; training makes no plots")
