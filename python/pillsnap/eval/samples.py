"""What the evaluation asks and what the right answer is: one ``Sample`` per photo of a split.

    samples = load_samples(Path("artifacts/manifest"), Path("data/aihub"), "val",
                           known=set(k_codes))

Ground truth comes from the scan's manifest (the official VS/VL validation split of the real
AIHub tree), never from the served answers. A pill whose K-code is not in the served class
index is *unknown*: the right answer for it is a flag, not a name. An unknown drug is a
*near twin* when the caller says so (``twins``: by default the synthetic generator's
``synth_holdout.json``; ``pillsnap.eval`` adds the drug table's look-alikes of known drugs);
those are reported apart.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pillsnap.data.manifest import read_manifest
from pillsnap.data.synth import load_holdout
from pillsnap.errors import DataError

MANIFEST_FILE = "manifest.jsonl"


@dataclass(frozen=True)
class TruthPill:
    k_code: str
    box: tuple[float, float, float, float]  # xyxy in photo pixels
    known: bool  # in the served class index
    twin: bool = False  # an unknown drug drawn as a look-alike of a known one (synthetic)


@dataclass(frozen=True)
class Sample:
    path: Path  # the photo on disk
    name: str  # its path relative to the dataset root (what reports print)
    kind: str  # single | combo: the pipeline it is sent through
    pills: tuple[TruthPill, ...]


def load_samples(manifest_dir: Path, root: Path, split: str, *, known: Collection[str],
                 limit: int | None = None,
                 twins: Mapping[str, Sequence[str]] | None = None) -> list[Sample]:
    """Every photo of ``split`` in the manifest, in manifest order (``limit``: the first N).
    ``twins``: unknown K-code -> its known look-alikes (default: ``synth_holdout.json``)."""
    manifest = manifest_dir / MANIFEST_FILE
    if not manifest.is_file():
        raise DataError(f"no manifest at {manifest}: run python -m pillsnap.data scan first")
    twins = load_holdout(root) if twins is None else twins
    samples: list[Sample] = []
    for row in read_manifest(manifest):
        if row.split != split:
            continue
        pills = tuple(TruthPill(p.k_code, (p.bbox[0], p.bbox[1], p.bbox[0] + p.bbox[2],
                                           p.bbox[1] + p.bbox[3]),
                                p.k_code in known, bool(twins.get(p.k_code)))
                      for p in row.pills)
        samples.append(Sample(root / row.path, row.path, row.kind, pills))
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise DataError(f"the manifest {manifest} has no {split!r} photos")
    return samples
