"""Model releases: a versioned, checksummed copy of what serving loads, and rollback.

    python -m pillsnap.ops release --export artifacts/export [--triton triton_models]
    python -m pillsnap.ops releases                 # list; * marks the active one
    python -m pillsnap.ops rollback [--to VERSION]  # the previous active release

Layout under ``--root`` (default ``releases``)::

    releases/<version>/export/          the export folder (ONNX models, classes, drugs, reports)
    releases/<version>/triton_models/   the Triton repository, when given
    releases/<version>/config.yaml      the run's resolved config, when given
    releases/<version>/release.json     version, model versions, sources, time
    releases/<version>/SHA256SUMS       every file's checksum (``sha256sum -c`` works)
    releases/<version>.tar.gz           the same, as one archive to copy elsewhere
    releases/current -> <version>       what the API serves
                                        (serve.model_path=releases/current/export)
    releases/history.json               every activation, in order (rollback reads it)

Switching ``current`` is one atomic rename of a symlink; an API started with
``serve.model_path=releases/current/export`` notices the change and loads the other release
(check with ``GET /version``). Releases are never modified after they are made: a
checksum mismatch makes activation refuse.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from pillsnap.errors import PillsnapError
from pillsnap.ops.checksums import verify_sums, write_sums

logger = logging.getLogger(__name__)

CURRENT, HISTORY, RECORD = "current", "history.json", "release.json"


class ReleaseError(PillsnapError):
    """A release cannot be made, found or activated."""


def _model_versions(export: Path) -> dict[str, str | None]:
    record_path = export / "export.json"
    if not record_path.is_file():
        raise ReleaseError(f"{export} is not a finished export (no export.json): run "
                           "python -m pillsnap.export first")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    detector = record.get("detector") or {}
    return {"classifier": record["classifier"].get("model_version"),
            "detector": detector.get("model_version")}


def make_release(root: Path, export: Path, *, version: str | None = None,
                 triton: Path | None = None, config: Path | None = None,
                 activate: bool = True) -> Path:
    """Copy the pieces into ``root/version``, checksum and archive them; activate by default."""
    models = _model_versions(export)
    version = version or time.strftime("v%Y%m%d-%H%M%S")
    if version in (CURRENT, HISTORY) or "/" in version or version.startswith("."):
        raise ReleaseError(f"{version!r} cannot name a release")
    target = root / version
    if target.exists():
        raise ReleaseError(f"release {version} exists already in {root}; releases are never "
                           "overwritten, choose another --version")
    staging = root / f".{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copytree(export, staging / "export")
    if triton is not None:
        shutil.copytree(triton, staging / "triton_models")
    if config is not None:
        shutil.copy2(config, staging / "config.yaml")
    (staging / RECORD).write_text(json.dumps({
        "version": version, "models": models, "export": str(export.resolve()),
        "triton": str(triton.resolve()) if triton else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2) + "\n", encoding="utf-8")
    write_sums(staging)
    staging.rename(target)  # a crash above leaves only a .partial folder, never a half release
    with tarfile.open(root / f"{version}.tar.gz", "w:gz") as tar:
        tar.add(target, arcname=version)
    logger.info("release %s: %s -> %s (+ %s.tar.gz)", version, export, target, version)
    if activate:
        activate_release(root, version)
    return target


def list_releases(root: Path) -> list[dict[str, Any]]:
    """Every release under ``root``, oldest first, with ``active`` marking ``current``."""
    active = current_version(root)
    found = []
    for folder in root.glob("*"):
        if folder.is_symlink() or not (folder / RECORD).is_file():
            continue  # "current" is a link to a release, not one more
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        found.append({**record, "active": folder.name == active})
    return sorted(found, key=lambda r: (r["created"], r["version"]))


def current_version(root: Path) -> str | None:
    link = root / CURRENT
    return os.readlink(link) if link.is_symlink() else None


def _history(root: Path) -> list[dict[str, str]]:
    path = root / HISTORY
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def activate_release(root: Path, version: str) -> None:
    """Point ``root/current`` at ``version`` (atomically) after checking its checksums."""
    target = root / version
    if not (target / RECORD).is_file():
        known = ", ".join(r["version"] for r in list_releases(root)) or "none"
        raise ReleaseError(f"no release {version!r} in {root} (known: {known})")
    problems = verify_sums(target)
    if problems:
        raise ReleaseError(f"release {version} fails its checksums ({'; '.join(problems[:3])}"
                           f"{' ...' if len(problems) > 3 else ''}): not activated")
    temporary = root / f".{CURRENT}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(version)  # relative: the releases folder can move as a whole
    temporary.replace(root / CURRENT)
    history = [*_history(root), {"version": version,
                                 "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}]
    (root / HISTORY).write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    logger.info("active release: %s", version)


def rollback(root: Path, to: str | None = None) -> str:
    """Activate ``to``, or the release that was active before the current one."""
    if to is None:
        active = current_version(root)
        earlier = [h["version"] for h in _history(root) if h["version"] != active]
        if not earlier:
            raise ReleaseError(f"nothing to roll back to in {root}: only {active} was ever "
                               "active")
        to = earlier[-1]
    activate_release(root, to)
    return to
