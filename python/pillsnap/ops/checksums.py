"""SHA256SUMS files: what a release or backup held when it was made, checkable later.

    write_sums(Path("releases/v1"))           # releases/v1/SHA256SUMS, sha256sum format
    verify_sums(Path("releases/v1"))          # [] when every file is intact

The format is coreutils' (``<hex>  <relative path>``), so ``sha256sum -c SHA256SUMS``
checks a release on a machine without PillSnap. The drugs a pharmacy enrolls live in the
served export (and its Triton repository) and change there, in place, after the release is
made: the gallery, its history, the kept photos, the enrollment log and lock are the
release's state, not its make-up, and are left out of the sums (``ENROLLMENT_STATE``), or
every enrollment would make the release "changed" and refuse its activation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pillsnap.contract.gallery import GALLERY_FILE, HISTORY_DIR
from pillsnap.enroll.store import LOCK_FILE, LOG_FILE, PHOTOS_DIR

SUMS_FILE = "SHA256SUMS"
# names (files or folders) of what python -m pillsnap.enroll changes after a release is made
ENROLLMENT_STATE = frozenset({GALLERY_FILE, HISTORY_DIR, PHOTOS_DIR, LOG_FILE, LOCK_FILE})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SUMS_FILE
                  and not ENROLLMENT_STATE.intersection(p.relative_to(folder).parts))


def write_sums(folder: Path) -> Path:
    lines = [f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}" for p in _files(folder)]
    out = folder / SUMS_FILE
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def verify_sums(folder: Path) -> list[str]:
    """Problems found (missing, changed or unlisted files); an empty list means intact."""
    sums = folder / SUMS_FILE
    if not sums.is_file():
        return [f"{sums} is missing"]
    listed: dict[str, str] = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    problems = []
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"missing: {name}")
        elif file_sha256(path) != digest:
            problems.append(f"changed: {name}")
    present = {p.relative_to(folder).as_posix() for p in _files(folder)}
    problems += [f"not in {SUMS_FILE}: {name}" for name in sorted(present - set(listed))]
    return problems
