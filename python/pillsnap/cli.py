"""The shell of every ``python -m pillsnap.*`` command's ``main``.

    def main(argv: list[str] | None = None) -> int:
        args = parse_args(build_parser(), argv)
        return run_with_config(args, lambda cfg: run(cfg, args), logger)

A failure PillSnap raises on purpose (``PillsnapError``, or the types a command names) ends
the command with one line, not a traceback, and exit code 2 (``EXIT_ERROR``): logged by the
command's logger, or without one printed to stderr as ``error: <message>``. Anything else is
a bug and keeps its traceback. (``pillsnap.config.cli`` has the config arguments they share.)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from pillsnap.errors import PillsnapError

if TYPE_CHECKING:
    from pillsnap.config.schema import PillsnapConfig

EXIT_ERROR = 2
Errors = tuple[type[Exception], ...]


def run_main(body: Callable[[], int], logger: logging.Logger | None = None, *,
             catch: Errors = (PillsnapError,)) -> int:
    """``body()``'s exit code, or ``EXIT_ERROR`` with one line when it raises ``catch``."""
    try:
        return body()
    except catch as exc:
        if logger is None:
            print(f"error: {exc}", file=sys.stderr)
        else:
            logger.error("%s", exc)
        return EXIT_ERROR


def run_with_config(args: argparse.Namespace, body: Callable[[PillsnapConfig], int],
                    logger: logging.Logger, *, catch: Errors = (PillsnapError,)) -> int:
    """``run_main`` of: the config from ``--cfg``, ``--env-file`` and the overrides, logging
    at its ``logging.level``, then ``body(cfg)``."""
    from pillsnap.config.cli import config_from_args
    from pillsnap.logs import setup_logging

    def run() -> int:
        cfg = config_from_args(args)
        setup_logging(cfg.logging.level)
        return body(cfg)

    return run_main(run, logger, catch=catch)
