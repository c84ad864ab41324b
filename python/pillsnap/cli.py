"""The shell of every ``python -m pillsnap.*`` command's ``main``.

    def main(argv: list[str] | None = None) -> int:
        args = parse_args(build_parser(), argv)
        return run_with_config(args, lambda cfg: run(cfg, args), logger)  # config/cli.py

A failure PillSnap raises on purpose (``PillsnapError``, or the types a command names) ends
the command with one line, not a traceback, and exit code 2 (``EXIT_ERROR``): logged by the
command's logger, or without one printed to stderr as ``error: <message>``. Anything else is
a bug and keeps its traceback. (``pillsnap.config.cli`` has the config arguments they share.)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from pillsnap.errors import PillsnapError

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
