"""Backups of run folders: one dated tar.gz with its checksum, the oldest pruned.

    python -m pillsnap.ops backup --runs runs --out backups [--keep 5]

Checkpoints, logs, TensorBoard events and reports go in as they are; ``*.tmp`` files (a
checkpoint being written) are left out. The archive is written under a temporary name and
renamed when complete, so a backup folder never holds a truncated archive.
"""

from __future__ import annotations

import logging
import tarfile
import time
from pathlib import Path

from pillsnap.errors import PillsnapError
from pillsnap.ops.checksums import file_sha256

logger = logging.getLogger(__name__)

PREFIX = "runs-"


def backup_runs(runs: Path, out: Path, *, keep: int = 5) -> Path:
    if not runs.is_dir():
        raise PillsnapError(f"no run folder at {runs}")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    archive = out / f"{PREFIX}{stamp}.tar.gz"
    n = 1
    while archive.exists():  # two backups within one second keep both
        archive = out / f"{PREFIX}{stamp}-{n}.tar.gz"
        n += 1
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(runs, arcname=runs.name,
                filter=lambda info: None if info.name.endswith(".tmp") else info)
    partial.rename(archive)
    archive.with_name(archive.name + ".sha256").write_text(
        f"{file_sha256(archive)}  {archive.name}\n", encoding="utf-8")
    logger.info("backup: %s -> %s (%.1f MB)", runs, archive, archive.stat().st_size / 2**20)
    prune(out, keep)
    return archive


def prune(out: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest backups (and their checksum files)."""
    archives = sorted(out.glob(f"{PREFIX}*.tar.gz"), key=lambda p: p.stat().st_mtime)
    removed = archives[:-keep] if keep > 0 else archives
    for path in removed:
        path.unlink()
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        logger.info("backup pruned: %s", path)
    return removed
