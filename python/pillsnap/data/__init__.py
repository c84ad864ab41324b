"""Data: AIHub ingestion (scan), progressive stages, synthetic data; later the pack and loader.

Command line: ``python -m pillsnap.data --help``.
"""

from __future__ import annotations

from pillsnap.data.classes import ClassIndex
from pillsnap.data.drugs import load_drugs
from pillsnap.data.manifest import ManifestRow, Pill, read_manifest

__all__ = ["ClassIndex", "ManifestRow", "Pill", "load_drugs", "read_manifest"]
