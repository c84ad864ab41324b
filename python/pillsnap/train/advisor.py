"""After each epoch: advice for the next run, written to the log and advisor.json.

Nothing here is applied automatically: a run that changes its own settings is hard to
reproduce, so the advisor only says what a person may want to change.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

VRAM_HIGH = 0.90
PLATEAU_EPOCHS = 3
PLATEAU_DELTA = 1e-3


@dataclass
class Advisor:
    """Collects per-epoch facts; ``advise`` returns (and logs) the recommendations."""

    out: Path
    history: list[dict[str, Any]] = field(default_factory=list)

    def advise(self, epoch: int, *, oom_steps: list[str], vram_fraction: float,
               monitor: str, value: float | None, higher_is_better: bool,
               batch_size: int, lr: float, patience: int) -> list[str]:
        self.history.append({"epoch": epoch, "value": value})
        tips: list[str] = []
        if oom_steps:
            tips.append(f"out-of-memory remedies ran ({', '.join(oom_steps)}): start the next "
                        f"run with train.batch_size={max(1, batch_size // 2)}")
        if vram_fraction > VRAM_HIGH:
            tips.append(f"GPU memory peaked at {vram_fraction:.0%}: try train.channels_last=false "
                        "or train.grad_checkpointing=true for headroom")
        values = [h["value"] for h in self.history if h["value"] is not None]
        signed = values if higher_is_better else [-v for v in values]
        if len(signed) > PLATEAU_EPOCHS:
            recent, before = max(signed[-PLATEAU_EPOCHS:]), max(signed[:-PLATEAU_EPOCHS])
            if recent - before < PLATEAU_DELTA:
                tips.append(f"{monitor} has not improved for {PLATEAU_EPOCHS} epochs: try "
                            f"train.lr={lr / 3:.2e}")
        if len(signed) >= 2 and signed[-1] < signed[-2] - PLATEAU_DELTA:
            tips.append(f"{monitor} dropped this epoch: consider "
                        f"train.early_stopping.patience={patience + 2} before stopping early")
        for tip in tips:
            logger.info("advisor: %s", tip)
        self._write(epoch, tips)
        return tips

    def _write(self, epoch: int, tips: list[str]) -> None:
        path = self.out / "advisor.json"
        data = json.loads(path.read_text()) if path.is_file() else {"epochs": []}
        data["epochs"].append({"epoch": epoch, "recommendations": tips})
        data["note"] = "recommendations only; none is applied automatically"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
