"""What ``python -m pillsnap.enroll`` does: add a drug, remove one, roll back, list.

    report = add_drug(cfg, export, k_code="K-012345", photos=paths, drug=entry)
    remove_drug(cfg, export, "K-012345"); rollback(cfg, export); listing(export)

Each checks everything before it writes (``pillsnap.enroll.photos``) and writes through
``pillsnap.enroll.store.Stores`` (locked, all or nothing, audited). Bad input raises
``EnrollError`` with the reason, and the gallery is left as it was.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pillsnap.config.schema import PillsnapConfig
from pillsnap.contract.gallery import GALLERY_FILE, Enrolled, Gallery, history
from pillsnap.enroll.photos import check_features, features_of, read_photos
from pillsnap.enroll.store import PHOTOS_DIR, Stores
from pillsnap.errors import EnrollError
from pillsnap.infer.pipeline import OnnxPipeline

K_CODE = re.compile(r"^K-\d{6}$")


def add_drug(cfg: PillsnapConfig, export: Path, *, k_code: str, photos: list[Path],
             drug: Mapping[str, Any], repository: Path | None = None,
             pipe: OnnxPipeline | None = None, min_photos: int | None = None,
             skip_unusable: bool = False) -> dict[str, Any]:
    """Enroll ``k_code`` from ``photos``; the report of what was done and noticed.

    ``pipe``: an open pipeline over ``export`` (eval enrolls many drugs with one);
    ``min_photos``: instead of ``enroll.min_photos`` (eval measures 1 photo too);
    ``skip_unusable``: leave out photos with no pill or several (``--skip-unusable``), as
    long as ``min_photos`` are left.
    """
    if not K_CODE.match(k_code):
        raise EnrollError(f"{k_code!r} is not a K-code (K- and six digits, e.g. K-012345)")
    least = cfg.enroll.min_photos if min_photos is None else min_photos
    if len(photos) < least:
        raise EnrollError(f"{len(photos)} photo(s) of {k_code}: at least {least} are needed "
                          "(enroll.min_photos), each a single pill, from different sides and "
                          "angles")
    if len(photos) > cfg.enroll.max_photos:
        raise EnrollError(f"{len(photos)} photos of {k_code}: at most {cfg.enroll.max_photos} "
                          "(enroll.max_photos)")
    with Stores.open(export, repository) as stores:
        current = stores.current()
        _refuse_known(current, k_code)
        if not (drug.get("name_ko") or drug.get("name_en") or drug.get("edi_codes")):
            raise EnrollError(f"no name or EDI code for {k_code}: give its drug-table entry "
                              "(--drugs FILE, enroll.drugs) or --name-ko/--name-en/--edi, so "
                              "answers can say what it is")
        taken_photos = read_photos(photos, max_bytes=cfg.serve.max_upload_bytes)
        pipe = pipe or OnnxPipeline.open(export, threads=cfg.serve.threads,
                                         max_pixels=cfg.serve.max_pixels)
        taken = features_of(pipe, taken_photos, skip_unusable=skip_unusable)
        if len(taken.used) < least:
            raise EnrollError(f"only {len(taken.used)} of the {len(photos)} photos of "
                              f"{k_code} show one pill the detector finds; at least {least} "
                              f"are needed: {'; '.join(taken.skipped[:3])}")
        taken_photos = taken.used
        notes = [*taken.skipped, *check_features(taken.whitened, current, pipe.recipe,
                                                 [str(p.path) for p in taken_photos])]
        entry = Enrolled(k_code, {"k_code": k_code, **drug}, len(taken_photos),
                         tuple(p.digest for p in taken_photos), _today())
        after = stores.as_new(current.enrolled_with(entry, taken.whitened), current)
        detail = {"photos": [str(p.path) for p in taken_photos], "notes": notes,
                  "name": drug.get("name_ko") or drug.get("name_en")}
        stores.commit(after, action="add", k_code=k_code, detail=detail)
        folder = stores.keep_photos(k_code, [(p.path.name, p.data, p.digest)
                                             for p in taken_photos])
    return {"k_code": k_code, "photos": len(taken_photos), "boxes": taken.boxes,
            "version": after.version, "notes": notes, "kept_photos": str(folder),
            "targets": [str(t) for t in stores.targets]}


def remove_drug(export: Path, k_code: str, repository: Path | None = None) -> dict[str, Any]:
    with Stores.open(export, repository) as stores:
        current = stores.current()
        try:
            after = stores.as_new(current.without(k_code), current)
        except ValueError as exc:  # GalleryError: a trained class, or not enrolled
            raise EnrollError(str(exc)) from None
        stores.commit(after, action="remove", k_code=k_code, detail={})
    return {"k_code": k_code, "version": after.version}


def rollback(export: Path, repository: Path | None = None) -> dict[str, Any]:
    """Restore the version the current gallery was made from (as a new version, whose own
    parent is that one's: a second rollback goes one step further back)."""
    with Stores.open(export, repository) as stores:
        current = stores.current()
        if current.parent is None:
            raise EnrollError(f"nothing to roll back: gallery version {current.version} of "
                              f"{export} is the export's own")
        earlier = stores.version_file(current.parent)
        after = stores.as_new(earlier, current, parent=earlier.parent)
        stores.commit(after, action="rollback", k_code=None,
                      detail={"restored": earlier.version})
    return {"version": after.version, "restored": earlier.version,
            "enrolled": list(after.enrolled_codes)}


def listing(export: Path) -> dict[str, Any]:
    path = export / GALLERY_FILE
    try:
        gallery = Gallery.load(path)
    except ValueError as exc:
        raise EnrollError(str(exc)) from None
    return {"export": str(export), "version": gallery.version, "parent": gallery.parent,
            "trained_classes": gallery.trained,
            "enrolled": [{"k_code": e.k_code, "name": e.drug.get("name_ko") or
                          e.drug.get("name_en"), "edi_codes": list(e.drug.get("edi_codes", [])),
                          "photos": e.photos, "added": e.added} for e in gallery.enrolled],
            "history": [p.name for p in history(path)]}


def from_export(cfg: PillsnapConfig, export: Path, old: Path,
                repository: Path | None = None) -> list[dict[str, Any]]:
    """Enroll into ``export`` every drug ``old`` had enrolled, from the photos it kept: a
    retrained model's features differ, so the means are taken again, not copied."""
    previous = Gallery.load(old / GALLERY_FILE)
    pipe = OnnxPipeline.open(export, threads=cfg.serve.threads, max_pixels=cfg.serve.max_pixels)
    reports = []
    for entry in previous.enrolled:
        folder = old / PHOTOS_DIR / entry.k_code
        photos = sorted(p for p in folder.glob("*") if p.stem in entry.digests)
        if len(photos) != len(entry.digests):
            raise EnrollError(f"{old} kept {len(photos)} of the {len(entry.digests)} photos "
                              f"{entry.k_code} was enrolled from (in {folder})")
        drug = {k: v for k, v in entry.drug.items() if k != "k_code"}
        reports.append(add_drug(cfg, export, k_code=entry.k_code, photos=photos, drug=drug,
                                repository=repository, pipe=pipe, min_photos=1,
                                skip_unusable=True))
    return reports


def _refuse_known(gallery: Gallery, k_code: str) -> None:
    if k_code in gallery.k_codes[:gallery.trained]:
        raise EnrollError(f"{k_code} is one of the model's own classes: it is known already")
    for entry in gallery.enrolled:
        if entry.k_code == k_code:
            raise EnrollError(f"{k_code} was enrolled on {entry.added} from {entry.photos} "
                              "photos; remove it first (--remove) to enroll it again")


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
