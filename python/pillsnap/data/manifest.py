"""The manifest: one JSON line per image, every pill with its own K-code and box.

A manifest directory holds ``manifest.jsonl``, ``classes.json`` (the class index),
``drugs.json`` (K-code -> EDI codes and metadata) and a report of how it was made.
Paths in rows are relative to ``root`` (recorded in the report) so a dataset can move.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pillsnap.errors import DataError

MANIFEST_FILE = "manifest.jsonl"


@dataclass
class Pill:
    k_code: str
    bbox: list[float]  # [x, y, w, h] in image pixels


@dataclass
class ManifestRow:
    path: str  # relative to the dataset root, POSIX separators
    split: str  # train | val
    kind: str  # single | combo
    width: int
    height: int
    pills: list[Pill]
    attrs: dict[str, Any] = field(default_factory=dict)  # shooting attributes from the name

    @property
    def k_codes(self) -> list[str]:
        return [p.k_code for p in self.pills]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestRow:
        pills = [Pill(p["k_code"], list(p["bbox"])) for p in data["pills"]]
        return cls(data["path"], data["split"], data["kind"], int(data["width"]),
                   int(data["height"]), pills, dict(data.get("attrs") or {}))


def write_manifest(rows: Iterable[ManifestRow], path: Path) -> int:
    """Write rows atomically (a crash leaves the old manifest, never half a new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(row.to_json())
            fh.write("\n")
            count += 1
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return count


def read_manifest(path: Path) -> Iterator[ManifestRow]:
    """Rows of a manifest file (or of ``DIR/manifest.jsonl``); a bad line names its number."""
    if path.is_dir():
        path = path / MANIFEST_FILE
    if not path.is_file():
        raise DataError(f"manifest not found: {path} (run: python -m pillsnap.data scan)")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield ManifestRow.from_dict(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{path}:{number}: bad manifest row ({exc})") from None


def write_json(data: Any, path: Path) -> None:
    """Pretty, UTF-8, atomic JSON for the small side files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} {path} is not valid JSON: {exc}") from None
