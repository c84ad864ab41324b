"""Typed, validated configuration.

Load it once at start-up::

    cfg = load_config("config.yaml", ["train.lr=1e-4", "dataloader.threads=12"])

Inspect what a command would run with: ``python -m pillsnap.config show train.lr=1e-4``.
"""

from __future__ import annotations

from pillsnap.config.loader import config_hash, load_config, save_config, to_yaml
from pillsnap.config.schema import PillsnapConfig

__all__ = ["PillsnapConfig", "config_hash", "load_config", "save_config", "to_yaml"]
