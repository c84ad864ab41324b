"""Where an enrollment writes: the export's gallery and, with ``--triton-repo``, the copy
Triton's ``postprocess`` model serves; under a lock, all or nothing, with an audit trail.

    with Stores.open(Path("artifacts/export"), Path("triton_models")) as stores:
        before = stores.current()
        stores.commit(after, action="add", k_code="K-012345", detail={...})

The export's ``gallery.npz`` is the source: every change starts from it and is copied to the
repository, so a repository that missed an earlier change (enrolled without
``--triton-repo``) catches up with the next one. A second enrollment on the same export
while one runs is refused at once (``fcntl.flock`` on ``.enroll.lock``), not queued. A write
that fails part-way puts back what it already replaced. Versions only grow (the history
keeps every replaced file as ``gallery_history/gallery.v<N>.npz``), so a rollback is itself a
new version and can be rolled back.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pillsnap.contract.gallery import GALLERY_FILE, Gallery, GalleryError, history
from pillsnap.contract.recipe import RECIPE_FILE
from pillsnap.errors import EnrollError

logger = logging.getLogger("pillsnap.enroll")

LOCK_FILE = ".enroll.lock"
LOG_FILE = "enrollment_log.jsonl"
PHOTOS_DIR = "enrolled"
REPOSITORY_MARKER = "pillsnap_repository.json"


@dataclass
class Stores:
    export: Path
    triton: Path | None  # the repository's postprocess gallery, when asked
    _lock: IO[str] | None = None

    @classmethod
    @contextmanager
    def open(cls, export: Path, repository: Path | None = None) -> Iterator[Stores]:
        """The targets, locked for this process until the block ends."""
        if not (export / GALLERY_FILE).is_file():
            raise EnrollError(f"{export} has no {GALLERY_FILE}: drugs are enrolled into an "
                              "export folder of python -m pillsnap.export (a finished run's "
                              "best.pt)")
        triton = repository_gallery(repository, export) if repository is not None else None
        stores = cls(export, triton)
        with _locked(export / LOCK_FILE) as handle:
            stores._lock = handle
            yield stores

    @property
    def targets(self) -> list[Path]:
        paths = [self.export / GALLERY_FILE]
        return paths + ([self.triton] if self.triton is not None else [])

    def current(self) -> Gallery:
        try:
            return Gallery.load(self.export / GALLERY_FILE)
        except GalleryError as exc:
            raise EnrollError(str(exc)) from None

    def next_version(self, current: Gallery) -> int:
        """One more than any version this export's gallery ever had."""
        path = self.export / GALLERY_FILE
        kept = [int(p.stem.split(".v")[1]) for p in history(path)]
        return max([current.version, *kept]) + 1

    def commit(self, gallery: Gallery, *, action: str, k_code: str | None,
               detail: dict[str, Any]) -> None:
        """Write ``gallery`` to every target (all or nothing), then the audit trail."""
        before = self.current()
        kept = {path: set(history(path)) for path in self.targets}
        written: list[tuple[Path, bytes | None]] = []
        for path in self.targets:
            try:
                old = path.read_bytes() if path.is_file() else None
                gallery.save(path)
            except OSError as exc:
                self._undo(written, kept)
                raise EnrollError(f"could not write {path}: {exc.strerror or exc}; nothing "
                                  "was changed") from None
            written.append((path, old))
        entry = {"time": _now(), "action": action, "k_code": k_code,
                 "version": [before.version, gallery.version],
                 "targets": [str(p) for p in self.targets], **detail}
        with (self.export / LOG_FILE).open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")
        where = f"export {self.export}" + (f" and Triton {self.triton}" if self.triton else "")
        logger.info("enrollment: %s %s; gallery version %d -> %d; %s", action,
                    k_code or "", before.version, gallery.version, where)

    @staticmethod
    def _undo(written: list[tuple[Path, bytes | None]], kept: dict[Path, set[Path]]) -> None:
        """Put back the files a failed commit already replaced, and drop the history
        entries it made."""
        for path, old in reversed(written):
            if old is not None:
                _restore(path, old)
        for path, before in kept.items():
            for made in set(history(path)) - before:
                made.unlink(missing_ok=True)
            folder = path.parent / "gallery_history"
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def keep_photos(self, k_code: str, photos: list[tuple[str, bytes, str]]) -> Path:
        """Copies of the photos (name, bytes, digest) under ``enrolled/<K-code>/``: the drug
        can be enrolled into the next model from them (``--from-export``)."""
        folder = self.export / PHOTOS_DIR / k_code
        folder.mkdir(parents=True, exist_ok=True)
        for name, data, digest in photos:
            (folder / f"{digest}{Path(name).suffix.lower() or '.img'}").write_bytes(data)
        return folder

    def version_file(self, version: int) -> Gallery:
        """An earlier version of the export's gallery, from its history."""
        for path in history(self.export / GALLERY_FILE):
            if int(path.stem.split(".v")[1]) == version:
                return Gallery.load(path)
        raise EnrollError(f"version {version} of the gallery is not in "
                          f"{self.export / 'gallery_history'}")

    def as_new(self, gallery: Gallery, current: Gallery, **changes: Any) -> Gallery:
        return dataclasses.replace(gallery, version=self.next_version(current), **changes)


def repository_gallery(repository: Path, export: Path) -> Path:
    """The gallery file Triton's postprocess serves in ``repository``, checked to belong to
    ``export`` (the same recipe)."""
    marker = repository / REPOSITORY_MARKER
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        version = str(record["triton_model_version"])
    except (OSError, ValueError, KeyError):
        raise EnrollError(f"{repository} is not a Triton repository written by python -m "
                          "pillsnap.export --triton (no readable "
                          f"{REPOSITORY_MARKER})") from None
    folder = repository / "postprocess" / version
    try:
        same = (folder / RECIPE_FILE).read_bytes() == (export / RECIPE_FILE).read_bytes()
    except OSError:
        same = False
    if not same:
        raise EnrollError(f"{repository} serves another export than {export} (their "
                          f"{RECIPE_FILE} differ): write it again from this one (python -m "
                          f"pillsnap.export --triton --from {export} --out {repository})")
    return folder / GALLERY_FILE


@contextmanager
def _locked(path: Path) -> Iterator[IO[str]]:
    handle = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise EnrollError(f"another enrollment is changing {path.parent} ({holder}); "
                              "nothing was changed: try again when it has finished") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {_now()}\n")
        handle.flush()
        yield handle
    finally:
        handle.close()  # closing releases the lock


def _restore(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.restore")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
