"""The config arguments every ``python -m pillsnap.*`` command shares.

``--cfg FILE`` (default ./config.yaml when present), ``--env-file FILE`` (default .env)
and dotted overrides such as ``train.batch_size=128`` anywhere on the command line.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from pillsnap.cli import Errors, run_main
from pillsnap.config.loader import load_config
from pillsnap.config.schema import PillsnapConfig
from pillsnap.errors import PillsnapError
from pillsnap.logs import setup_logging

# "section.key=value" or "top_level_key=value" (a top-level config field, so that a flag
# value such as "--out a=b" stays a flag value).
_OVERRIDE = re.compile(r"^(?P<top>[A-Za-z_]\w*)(\.\w+)*=")


def is_override(token: str) -> bool:
    match = _OVERRIDE.match(token)
    if not match:
        return False
    dotted = "." in token.partition("=")[0]  # a typo in a section name still gets its message
    return dotted or match["top"] in PillsnapConfig.model_fields


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cfg", type=Path, default=None,
                        help="config YAML (default: ./config.yaml if present)")
    parser.add_argument("--env-file", type=Path, default=Path(".env"),
                        help="serving secrets (default: .env)")
    parser.epilog = (parser.epilog or "") + "\nOverrides: section.key=value, e.g. train.lr=1e-4"


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags with ``parser``; dotted ``key=value`` tokens become ``args.overrides``."""
    import sys

    tokens = list(sys.argv[1:] if argv is None else argv)
    overrides = [t for t in tokens if is_override(t)]
    args = parser.parse_args([t for t in tokens if not is_override(t)])
    args.overrides = overrides
    return args


def config_from_args(args: argparse.Namespace) -> PillsnapConfig:
    return load_config(args.cfg, args.overrides, env_file=args.env_file)


def run_with_config(args: argparse.Namespace, body: Callable[[PillsnapConfig], int],
                    logger: logging.Logger, *, catch: Errors = (PillsnapError,)) -> int:
    """``pillsnap.cli.run_main`` of: the config from ``--cfg``, ``--env-file`` and the
    overrides, logging at its ``logging.level``, then ``body(cfg)``."""

    def run() -> int:
        cfg = config_from_args(args)
        setup_logging(cfg.logging.level)
        return body(cfg)

    return run_main(run, logger, catch=catch)
