"""The drug table: K-code -> EDI codes and the metadata the API returns.

Built by the scanner from the label JSONs (every pill JSON repeats its drug's metadata),
saved as ``drugs.json`` and read by export and serving.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pillsnap.data.manifest import read_json, write_json

DRUGS_FILE = "drugs.json"


class DrugTableBuilder:
    """Merge metadata seen across many labels of the same drug.

    The first non-empty value of each field wins; EDI codes are the union in first-seen
    order (``edi_code``, the API's primary code, is the first of them).
    """

    def __init__(self) -> None:
        self._drugs: dict[str, dict[str, Any]] = {}

    def add(self, k_code: str, drug: dict[str, Any]) -> None:
        entry = self._drugs.setdefault(k_code, {"k_code": k_code, "edi_codes": []})
        for code in drug.get("edi_codes", []):
            if code not in entry["edi_codes"]:
                entry["edi_codes"].append(code)
        for key, value in drug.items():
            if key != "edi_codes" and key not in entry and value not in (None, ""):
                entry[key] = value

    def build(self) -> dict[str, dict[str, Any]]:
        table = {}
        for code in sorted(self._drugs):
            entry = dict(self._drugs[code])
            entry["edi_code"] = entry["edi_codes"][0] if entry["edi_codes"] else None
            table[code] = entry
        return table


def save_drugs(table: dict[str, dict[str, Any]], path: Path) -> Path:
    if path.is_dir():
        path = path / DRUGS_FILE
    write_json(table, path)
    return path


def load_drugs(path: Path) -> dict[str, dict[str, Any]]:
    if path.is_dir():
        path = path / DRUGS_FILE
    data = read_json(path, "drug table")
    return dict(data)


def subset_drugs(
    table: dict[str, dict[str, Any]], codes: Iterable[str]
) -> dict[str, dict[str, Any]]:
    return {c: table[c] for c in sorted(set(codes)) if c in table}
