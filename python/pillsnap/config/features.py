"""Feature sets: ``mvp`` < ``advanced`` < ``production`` (config key ``active_feature_set``).

A smaller set is a smaller system to run and to trust: ``mvp`` is single-pill
classification served in-process; ``advanced`` adds the combo pipeline and the detector;
``production`` adds Triton and the operations tooling. A config that asks for a feature
outside its set is refused at start-up, and ``import_active`` imports only the active
set's optional modules, so an ``mvp`` process never loads detector or Triton code.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pillsnap.config.schema import PillsnapConfig

logger = logging.getLogger(__name__)

ORDER = ("mvp", "advanced", "production")

# Optional modules each set adds on top of the smaller ones. Stage packages register here
# as they are written; core modules (config, data scan) are always importable.
MODULES: dict[str, tuple[str, ...]] = {
    "mvp": (),
    "advanced": ("pillsnap.data.yolo_view", "pillsnap.train.detect"),
    "production": (),
}


def includes(active: str, needed: str) -> bool:
    """Whether feature set ``active`` contains everything of ``needed``."""
    return ORDER.index(active) >= ORDER.index(needed)


def _requirements(cfg: PillsnapConfig) -> list[tuple[str, str]]:
    """(setting that asks for a feature, smallest feature set that has it)."""
    needs: list[tuple[str, str]] = []
    if cfg.pipeline.mode == "combo":
        needs.append(("pipeline.mode=combo", "advanced"))
    if cfg.train.task in ("det", "both"):
        needs.append((f"train.task={cfg.train.task}", "advanced"))
    if cfg.serve.backend == "triton":
        needs.append(("serve.backend=triton", "production"))
    return needs


def check_features(cfg: PillsnapConfig) -> None:
    """Raise ValueError when the config uses a feature its active set does not include."""
    active = cfg.active_feature_set
    for setting, needed in _requirements(cfg):
        if not includes(active, needed):
            allowed = ", ".join(s for s in ORDER if includes(s, needed))
            raise ValueError(
                f"{setting} needs active_feature_set {allowed} (it is {active!r})"
            )


def require(cfg: PillsnapConfig, needed: str, what: str) -> None:
    """Refuse a command that needs a larger feature set than the config's active one."""
    from pillsnap.errors import ConfigError

    if not includes(cfg.active_feature_set, needed):
        raise ConfigError(f"{what} needs active_feature_set {needed} or larger "
                          f"(it is {cfg.active_feature_set!r})")


def import_active(active: str) -> list[ModuleType]:
    """Import the optional modules of ``active`` and of the smaller sets, nothing more."""
    modules = []
    for name in ORDER[: ORDER.index(active) + 1]:
        for module in MODULES[name]:
            modules.append(importlib.import_module(module))
    logger.info("feature set %s: %d optional modules loaded", active, len(modules))
    return modules
