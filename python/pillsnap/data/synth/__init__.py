"""Synthetic pill photos in the exact AIHub format, for tests and dry runs without the 4 TB set.

Usage::

    python -m pillsnap.data synth --out DIR ...     (its options fill a SynthSpec)

or from Python::

    from pillsnap.data.synth import SynthSpec, generate
    summary = generate(Path("DIR"), SynthSpec(classes=12, seed=0), workers=4)

It writes PNG photos (976x1280 by default) with AIHub file names and one AIHub label JSON
per pill into ``1.Training``/``2.Validation`` with ``TS_/TL_/VS_/VL_`` single and combination
folders, plus ``synth_truth.jsonl`` (one line per photo: path, split, kind, each pill's K-code
and box) and ``synth_catalog.json`` (the drugs). Output is deterministic in the spec, whatever
the number of workers: every photo draws from its own random stream keyed by
(seed, split, kind, index). Drugs come in look-alike groups that differ only by imprint or
score line, so a model has to read imprints, as on the real data.

``holdout_classes`` (``--holdout-classes N``) adds drugs that are never trained on: they appear
only as validation single-pill photos, so an evaluation can measure whether the model rejects
drugs it never learnt. ``synth_holdout.json`` lists them, each with ``twin_of``: the known
drugs of its look-alike group (empty for a drug unlike every known one); read it with
:func:`load_holdout`. ``holdout_train_per_class`` also photographs them for the training
split, as the real data holds every drug there: a pharmacy's photos to enroll them from
(``python -m pillsnap.enroll``). The scan then indexes them like any drug, so a run holds
them out with ``data.exclude_k_codes`` (``synth_holdout.json`` lists the codes).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from pillsnap.data.synth.catalog import MAX_CLASSES, Drug, build_catalog
from pillsnap.data.synth.writer import (
    SPLITS,
    STEMS_PER_FOLDER,
    Job,
    StemAllocator,
    folder_name,
    write_job,
)
from pillsnap.errors import DataError

__all__ = ["SynthSpec", "SynthSummary", "choose_holdout", "generate", "load_holdout"]

logger = logging.getLogger(__name__)

TRUTH_FILE = "synth_truth.jsonl"
CATALOG_FILE = "synth_catalog.json"
HOLDOUT_FILE = "synth_holdout.json"
MAX_PILLS_PER_COMBO = 4  # the real combination folders name at most four K-codes
MIN_SIDE, MAX_SIDE = 128, 8192
_IMAGES_PER_COMBO = 3  # the real data photographs each combination several times
_PLAN_STREAM = 0x9A4


@dataclass(frozen=True)
class SynthSpec:
    """What to generate: image counts per split (per class for singles), sizes in pixels."""

    classes: int = 12  # number of distinct drugs (K-codes) to train on
    # Extra drugs photographed for validation singles only, never trained on nor in a
    # combination: the unknown drugs an open-set evaluation must reject.
    holdout_classes: int = 0
    # training-split single photos of each held-out drug (0: none, validation only); the run
    # must then exclude them (data.exclude_k_codes) to keep them unknown
    holdout_train_per_class: int = 0
    # hold out one drug of each look-alike group (each then has known twins: the hard case)
    # instead of the last drugs built (whole groups, unlike every known drug)
    holdout_twins: bool = False
    train_per_class: int = 20  # single-pill training images per class
    val_per_class: int = 6  # single-pill validation images per class
    combo_train: int = 10  # combination images, training
    combo_val: int = 4  # combination images, validation
    pills_per_combo: tuple[int, int] = (2, 4)  # inclusive; each combo has distinct drugs
    width: int = 976  # AIHub photos are 976x1280 (portrait)
    height: int = 1280
    seed: int = 0
    # Real catalogues hold look-alike drugs (same shape and colour, told apart by imprint
    # only); False gives every drug its own look, for runs too short to learn imprints.
    lookalikes: bool = True

    def __post_init__(self) -> None:
        # Accept a list from YAML or argparse and numpy integers; store plain ints, so that
        # the spec hashes and every number in the JSON output serialises.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list | tuple):
                value = tuple(int(v) if isinstance(v, np.integer) else v for v in value)
            elif isinstance(value, np.integer):
                value = int(value)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError listing every problem with this spec."""
        problems = list(_spec_problems(self))
        if problems:
            raise ValueError("invalid SynthSpec: " + "; ".join(problems))

    @property
    def images(self) -> int:
        per_split = (self.train_per_class + self.val_per_class) * self.classes
        held_out = (self.val_per_class + self.holdout_train_per_class) * self.holdout_classes
        return per_split + held_out + self.combo_train + self.combo_val


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _spec_problems(spec: SynthSpec) -> Iterator[str]:
    if not _is_int(spec.classes) or not 1 <= spec.classes <= MAX_CLASSES:
        yield f"classes must be an integer in 1..{MAX_CLASSES}, got {spec.classes!r}"
    yield from _holdout_problems(spec)
    for name in ("train_per_class", "val_per_class", "combo_train", "combo_val",
                 "holdout_train_per_class"):
        value = getattr(spec, name)
        if not _is_int(value) or value < 0:
            yield f"{name} must be a non-negative integer, got {value!r}"
        elif name.endswith("per_class") and value > STEMS_PER_FOLDER:
            yield (f"{name} must be at most {STEMS_PER_FOLDER}, the number of distinct "
                   f"AIHub file names one K-code folder can hold, got {value}")
    for name in ("width", "height"):
        value = getattr(spec, name)
        if not _is_int(value) or not MIN_SIDE <= value <= MAX_SIDE:
            yield f"{name} must be an integer in {MIN_SIDE}..{MAX_SIDE}, got {value!r}"
    if _is_int(spec.width) and _is_int(spec.height) and spec.width > 0 and spec.height > 0 \
            and not 0.5 <= spec.width / spec.height <= 2.0:
        yield f"width/height must be between 1:2 and 2:1, got {spec.width}x{spec.height}"
    yield from _combo_problems(spec)
    if not _is_int(spec.seed) or spec.seed < 0:
        yield f"seed must be a non-negative integer, got {spec.seed!r}"
    if not isinstance(spec.lookalikes, bool):
        yield f"lookalikes must be true or false, got {spec.lookalikes!r}"
    counts = (spec.train_per_class, spec.val_per_class, spec.combo_train, spec.combo_val)
    if all(_is_int(c) and c >= 0 for c in counts) and not any(counts):
        yield "nothing to generate: every image count is 0"


def _holdout_problems(spec: SynthSpec) -> Iterator[str]:
    n = spec.holdout_classes
    if not _is_int(n) or n < 0:
        yield f"holdout_classes must be a non-negative integer, got {n!r}"
        return
    if _is_int(spec.classes) and spec.classes + n > MAX_CLASSES:
        yield (f"classes + holdout_classes must be at most {MAX_CLASSES} (the catalogue holds "
               f"both), got {spec.classes} + {n}")
    if n and _is_int(spec.val_per_class) and spec.val_per_class == 0:
        # Held-out drugs are only ever photographed as validation singles.
        yield "holdout_classes needs val_per_class > 0: held-out drugs appear in no other photo"


def _combo_problems(spec: SynthSpec) -> Iterator[str]:
    ppc = spec.pills_per_combo
    if not (isinstance(ppc, tuple) and len(ppc) == 2 and all(_is_int(v) for v in ppc)):
        yield f"pills_per_combo must be two integers (min, max), got {ppc!r}"
        return
    lo, hi = ppc
    if not 2 <= lo <= hi <= MAX_PILLS_PER_COMBO:
        yield (f"pills_per_combo must satisfy 2 <= min <= max <= {MAX_PILLS_PER_COMBO} "
               f"(AIHub combinations hold 2-4 drugs), got {ppc!r}")
    elif _is_int(spec.classes) and spec.classes < hi and _wants_combos(spec):
        yield (f"classes ({spec.classes}) must be at least the most pills per combination "
               f"({hi}): a combination holds distinct drugs")


def _wants_combos(spec: SynthSpec) -> bool:
    counts = (spec.combo_train, spec.combo_val)
    return not all(_is_int(c) for c in counts) or sum(counts) > 0


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote."""

    root: Path
    images: int
    pills: int
    classes: int
    seconds: float
    holdout_classes: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["root"] = str(self.root)
        return d


def generate(out: Path, spec: SynthSpec, workers: int = 1) -> SynthSummary:
    """Write the synthetic data set described by ``spec`` into ``out``.

    ``out`` must be missing or an empty directory: existing files are never overwritten.
    ``workers > 1`` renders in that many processes; the output is the same byte for byte.
    """
    spec.validate()
    if not _is_int(workers) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    out = Path(out)
    _prepare_out(out)
    start = time.perf_counter()
    catalog = build_catalog(spec.classes + spec.holdout_classes, spec.seed,
                            lookalikes=spec.lookalikes)
    holdout = choose_holdout(catalog, spec.holdout_classes, twins=spec.holdout_twins)
    jobs = plan_jobs(out, spec, catalog)
    logger.info("generating %d synthetic images (%d classes + %d held out, %dx%d) into %s with "
                "%d worker(s)", len(jobs), spec.classes, spec.holdout_classes, spec.width,
                spec.height, out, workers)
    records = list(_run(jobs, workers))
    with (out / TRUTH_FILE).open("x", encoding="utf-8") as f:
        for record in records:
            for pill in record["pills"]:
                if pill["k_code"] in holdout:
                    pill["holdout"] = True
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with (out / CATALOG_FILE).open("x", encoding="utf-8") as f:
        json.dump([d.fields for d in catalog], f, ensure_ascii=False, indent=2)
    with (out / HOLDOUT_FILE).open("x", encoding="utf-8") as f:
        # Written even when empty, so an evaluation can tell "no held-out drugs" from a data
        # set made before held-out drugs existed.
        entries = [{"k_code": k, "twin_of": twins} for k, twins in sorted(holdout.items())]
        json.dump({"holdout": entries}, f, ensure_ascii=False, indent=2)
    summary = SynthSummary(root=out, images=len(records),
                           pills=sum(len(r["pills"]) for r in records),
                           classes=spec.classes, seconds=round(time.perf_counter() - start, 3),
                           holdout_classes=spec.holdout_classes)
    logger.info("wrote %d images with %d pills in %.1f s", summary.images, summary.pills,
                summary.seconds)
    return summary


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(
            f"output directory {out} already holds files; synthetic data is only written into "
            "a new or empty directory so that nothing is overwritten")
    out.mkdir(parents=True, exist_ok=True)


def choose_holdout(catalog: list[Drug], n: int, *,
                   twins: bool = False) -> dict[str, list[str]]:
    """The ``n`` held-out drugs, K-code -> K-codes of the known drugs of its look-alike group.

    They are the last ``n`` drugs built: whole late groups (unknown drugs that look unlike
    every known one) and, where ``n`` cuts a group, "near twins" of known drugs; with
    ``twins``, the last member of each of the first ``n`` groups of two or more (every one
    a near twin of known drugs). ``catalog`` is :func:`build_catalog` of ``classes + n``
    drugs.
    """
    if not 0 <= n <= len(catalog):
        raise ValueError(f"cannot hold out {n} of {len(catalog)} drugs")
    built = sorted(catalog, key=lambda d: d.order)
    if twins:
        groups: dict[int, list[Drug]] = {}
        for drug in built:
            groups.setdefault(drug.group, []).append(drug)
        shared = [members[-1] for members in groups.values() if len(members) >= 2]
        if len(shared) < n:
            raise ValueError(f"cannot hold out {n} near twins: the catalogue has "
                             f"{len(shared)} look-alike groups (lookalikes=false makes none)")
        held = shared[:n]
    else:
        held = built[len(built) - n:]
    held_codes = {d.k_code for d in held}
    return {d.k_code: sorted(o.k_code for o in catalog
                             if o.group == d.group and o.k_code not in held_codes)
            for d in sorted(held, key=lambda d: d.k_code)}


def load_holdout(root: Path) -> dict[str, list[str]]:
    """Read ``synth_holdout.json`` of a data set made by ``python -m pillsnap.data synth``.

    Returns K-code -> ``twin_of`` (the known look-alikes of that held-out drug; empty when it
    looks unlike every known drug), or ``{}`` when the file is missing (real AIHub data, or a
    synthetic set without held-out drugs). Raises DataError when the file is broken.
    """
    path = Path(root) / HOLDOUT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from exc
    entries = data.get("holdout") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"{path} must hold {{\"holdout\": [...]}}, got {text[:80]!r}")
    holdout: dict[str, list[str]] = {}
    for entry in entries:
        twins = entry.get("twin_of") if isinstance(entry, dict) else None
        k_code = entry.get("k_code") if isinstance(entry, dict) else None
        if not isinstance(k_code, str) or not isinstance(twins, list) \
                or not all(isinstance(t, str) for t in twins):
            raise DataError(f"{path}: every holdout entry needs a \"k_code\" string and a "
                            f"\"twin_of\" list of K-codes, got {entry!r}")
        holdout[k_code] = list(twins)
    return holdout


def plan_jobs(out: Path, spec: SynthSpec, catalog: list[Drug]) -> list[Job]:
    """Every photo of the data set in output order: file names and drugs, not yet pixels.

    ``catalog`` holds ``spec.classes + spec.holdout_classes`` drugs; the held-out ones get
    validation singles only, and combinations draw from the known drugs alone.
    """
    holdout = choose_holdout(catalog, spec.holdout_classes, twins=spec.holdout_twins)
    known = [d for d in catalog if d.k_code not in holdout]
    jobs: list[Job] = []
    counts = {"train": (spec.train_per_class, spec.combo_train),
              "val": (spec.val_per_class, spec.combo_val)}
    for split_id, split in enumerate(SPLITS):
        per_class, n_combo = counts[split]
        rng = np.random.default_rng([_PLAN_STREAM, spec.seed, split_id])
        stems = StemAllocator(spec.width, spec.height)
        index = 0
        # Held-out drugs keep their K-code place among the validation singles, so a spec
        # without them plans exactly as before; their training photos come last, after the
        # combinations, so every other photo is drawn as without them.
        for drug in catalog if split == "val" else known:
            for _ in range(per_class):
                shot = stems.draw(drug.k_code, rng)
                jobs.append(Job(out, split, "single", index, spec.seed, (drug,), shot))
                index += 1
        for combo, drugs in enumerate(_combo_drugs(n_combo, spec, known, rng)):
            shot = stems.draw(folder_name(drugs), rng)
            jobs.append(Job(out, split, "combo", combo, spec.seed, drugs, shot))
        if split == "train":
            for drug in (d for d in catalog if d.k_code in holdout):
                for _ in range(spec.holdout_train_per_class):
                    shot = stems.draw(drug.k_code, rng)
                    jobs.append(Job(out, split, "single", index, spec.seed, (drug,), shot))
                    index += 1
    return jobs


def _combo_drugs(n_images: int, spec: SynthSpec, catalog: list[Drug],
                 rng: np.random.Generator) -> Iterator[tuple[Drug, ...]]:
    """Drug sets of the combination photos: each set photographed a few times, pills shuffled."""
    if n_images == 0:
        return
    lo, hi = spec.pills_per_combo
    n_sets = math.ceil(n_images / _IMAGES_PER_COMBO)
    sets: list[tuple[int, ...]] = []
    for _ in range(n_sets):
        for _attempt in range(50):  # prefer distinct sets while there are enough classes
            size = int(rng.integers(lo, hi + 1))
            chosen = tuple(sorted(int(i) for i in rng.choice(len(catalog), size, replace=False)))
            if chosen not in sets:
                break
        sets.append(chosen)
    for i in range(n_images):
        members = list(sets[i // _IMAGES_PER_COMBO])
        order = rng.permutation(len(members))
        yield tuple(catalog[members[k]] for k in order)


def _run(jobs: list[Job], workers: int) -> Iterator[dict]:
    """Render the jobs, in order; several processes when asked, each photo on its own stream."""
    step = max(1, len(jobs) // 10)
    if workers == 1 or len(jobs) < 2:
        results: Iterator[dict] = map(write_job, jobs)
        yield from _log_progress(results, len(jobs), step)
        return
    chunk = max(1, min(16, len(jobs) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        yield from _log_progress(pool.map(write_job, jobs, chunksize=chunk), len(jobs), step)


def _log_progress(results: Iterator[dict], total: int, step: int) -> Iterator[dict]:
    for done, record in enumerate(results, start=1):
        if done % step == 0 or done == total:
            logger.info("synth: %d/%d images", done, total)
        yield record
