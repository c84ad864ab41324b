"""Rotate large log files in place: ``app.log`` -> ``app.log.1.gz`` ... ``app.log.N.gz``.

    python -m pillsnap.ops rotate-logs --dir runs [--max-mb 50] [--keep 7]

Copy-then-truncate, like logrotate's ``copytruncate``: the training and API processes keep
their file open and go on writing at the start of the emptied file, so nothing needs a
restart. Lines written between the copy and the truncation are lost; at these sizes that
window is milliseconds. For a systemd service, logrotate(8) with the same settings does
the same job.
"""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)


def rotate_logs(folder: Path, *, max_bytes: int, keep: int) -> list[Path]:
    """Rotate every ``*.log`` under ``folder`` larger than ``max_bytes``; returns them."""
    rotated = []
    for log in sorted(folder.rglob("*.log")):
        if log.stat().st_size <= max_bytes:
            continue
        _shift(log, keep)
        with log.open("rb") as src, gzip.open(f"{log}.1.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        with log.open("r+b") as f:
            f.truncate(0)
        rotated.append(log)
        logger.info("rotated %s (kept %d old copies)", log, keep)
    return rotated


def _shift(log: Path, keep: int) -> None:
    Path(f"{log}.{keep}.gz").unlink(missing_ok=True)
    for n in range(keep - 1, 0, -1):
        older = Path(f"{log}.{n}.gz")
        if older.exists():
            older.rename(f"{log}.{n + 1}.gz")
