"""Logging: one format for console and the per-run file; one line per automatic decision.

Every command calls ``setup_logging`` once. Decisions and fallbacks go through
``log_decision`` so they read alike and can be found with ``grep 'decision:'``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
_HANDLER_FLAG = "_pillsnap_handler"


def setup_logging(level: str | None = "INFO", log_file: Path | None = None) -> None:
    """Console (stderr) and optional file handlers on the root logger; safe to call again."""
    root = logging.getLogger()
    root.setLevel(level or "INFO")
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_FLAG, False):
            root.removeHandler(handler)
            handler.close()
    formatter = logging.Formatter(FORMAT, DATEFMT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _HANDLER_FLAG, True)
        root.addHandler(handler)


def log_decision(
    logger: logging.Logger, what: str, choice: object, reason: str, *, fallback: bool = False
) -> None:
    """One line for one automatic choice: ``decision: threads=8 (fastest of 2,4,8)``.

    ``fallback=True`` only when the user explicitly asked for something that could not be
    given (``train.cuda_graphs=true`` without CUDA, ``train.amp_dtype=bf16`` on a CPU without
    bf16, a torch.compile that failed): a WARNING ``fallback:`` line. What an automatic or
    default setting settles on because of the hardware (no CUDA: fp32, no TF32, no pinned
    memory) is an ordinary INFO ``decision:`` line, so a CPU run reads as normal.
    """
    kind = "fallback" if fallback else "decision"
    level = logging.WARNING if fallback else logging.INFO
    logger.log(level, "%s: %s=%s (%s)", kind, what, choice, reason)
