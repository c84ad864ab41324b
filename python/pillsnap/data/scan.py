"""Scan an extracted AIHub tree into a manifest, a drug table, a class index and a report.

    python -m pillsnap.data scan --root /mnt/data/pillsnap_dataset --out artifacts/manifest

Dirty data is counted and reported, never fatal: orphan images (no label), orphan labels
(no image), broken JSON, unreadable images. A combination image gets one pill per label
JSON, each with its own K-code and box, never its folder's first K-code.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pillsnap.data.aihub import (
    IMAGE_SUFFIXES,
    DataFolder,
    PillLabel,
    classify_folder,
    combo_codes,
    nfc,
    parse_file_name,
    read_label,
)
from pillsnap.data.classes import CLASSES_FILE, ClassIndex
from pillsnap.data.drugs import DrugTableBuilder, save_drugs
from pillsnap.data.manifest import MANIFEST_FILE, ManifestRow, Pill, write_json, write_manifest
from pillsnap.data.probe import probe_paths
from pillsnap.errors import DataError, LabelError

logger = logging.getLogger(__name__)

REPORT_FILE = "scan_report.json"
EXAMPLES_KEPT = 20
INLINE_LIMIT = 2000  # below this many labels, parsing in-process beats starting workers

# (split, kind, folder name, file stem): how an image finds its labels.
Key = tuple[str, str, str, str]


@dataclass
class LabelFile:
    key: Key
    path: Path
    folder_code: str


@dataclass
class Problems:
    """Counts and a few examples of every kind of dirty data."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, where: Path | str, reason: str = "") -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < EXAMPLES_KEPT:
            self.examples[kind].append(f"{where}: {reason}" if reason else str(where))


def find_folders(root: Path) -> list[DataFolder]:
    """Every ``TS/TL/VS/VL_<n>_단일|조합`` folder under root, wherever the zips were extracted."""
    found: list[DataFolder] = []
    for dirpath, dirnames, _ in os.walk(root):
        keep = []
        for name in sorted(dirnames):
            folder = classify_folder(Path(dirpath) / name)
            if folder is not None:
                found.append(folder)
            elif not name.startswith("."):
                keep.append(name)
        dirnames[:] = keep  # do not descend into data folders: they are listed below
    return found


def _subdirs(path: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(path) as entries:
        yield from sorted((e for e in entries if e.is_dir()), key=lambda e: e.name)


def _files(path: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    with os.scandir(path) as entries:
        names = sorted(e.name for e in entries if e.is_file())
    for name in names:
        if name.lower().endswith(suffixes):
            yield path / name


def list_images(folder: DataFolder, problems: Problems) -> Iterator[tuple[Key, Path]]:
    for sub in _subdirs(folder.path):
        for path in _files(Path(sub.path), IMAGE_SUFFIXES):
            yield (folder.split, folder.kind, nfc(sub.name), nfc(path.stem)), path
    for path in _files(folder.path, IMAGE_SUFFIXES):
        problems.add("misplaced_files", path, "image outside a K-code folder")


def list_labels(folder: DataFolder, problems: Problems) -> Iterator[LabelFile]:
    """Single: ``<K>_json/*.json``. Combination: ``<K-a-b>_json/<K>/*.json``, one per pill."""
    for sub in _subdirs(folder.path):
        name = nfc(sub.name).removesuffix("_json")
        if folder.kind == "single":
            dirs = [(Path(sub.path), name)]
        else:
            dirs = [(Path(d.path), nfc(d.name)) for d in _subdirs(Path(sub.path))]
            dirs.append((Path(sub.path), ""))  # tolerate pill JSONs not split by K-code
        for directory, code in dirs:
            for path in _files(directory, (".json",)):
                yield LabelFile((folder.split, folder.kind, name, nfc(path.stem)), path, code)
    for path in _files(folder.path, (".json",)):
        problems.add("misplaced_files", path, "label outside a K-code folder")


def _parse_one(item: tuple[str, str]) -> PillLabel | str:
    path, code = item
    try:
        return read_label(Path(path), code or None)
    except LabelError as exc:
        return str(exc)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


def parse_labels(files: Sequence[LabelFile], workers: int) -> list[PillLabel | str]:
    """Parse label JSONs, in worker processes when there are many (JSON parsing holds the GIL)."""
    items = [(str(f.path), f.folder_code) for f in files]
    if len(items) < INLINE_LIMIT or workers == 1:
        return [_parse_one(i) for i in items]
    chunk = max(64, len(items) // (workers * 16))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_parse_one, items, chunksize=chunk))


@dataclass
class ScanResult:
    rows: list[ManifestRow]
    drugs: dict[str, dict[str, Any]]
    classes: ClassIndex
    report: dict[str, Any]


def scan(
    root: Path,
    out: Path | None = None,
    *,
    workers: int = 0,
    verify_images: str = "header",
    rebuild_classes: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ScanResult:
    """Scan ``root``; when ``out`` is given, write the manifest directory there.

    An existing ``out/classes.json`` is kept and only extended (new K-codes appended), so
    ids of a trained model stay valid; ``rebuild_classes=True`` starts a fresh index.
    """
    started = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root not found: {root}")
    workers = workers or os.cpu_count() or 1
    say = progress or logger.info
    problems = Problems()

    folders = find_folders(root)
    if not folders:
        raise DataError(f"no AIHub folders (TS_*/TL_*/VS_*/VL_*) under {root}; "
                        "extract the zips first (see README: Your own AIHub data)")
    images: dict[Key, Path] = {}
    labels: list[LabelFile] = []
    for folder in folders:
        if folder.role == "image":
            for key, path in list_images(folder, problems):
                if key in images:
                    problems.add("duplicate_images", path, f"same as {images[key]}")
                    continue
                images[key] = path
        else:
            labels.extend(list_labels(folder, problems))
    say(f"found {len(folders)} folders, {len(images)} images, {len(labels)} label files")

    parsed = parse_labels(labels, workers)
    by_key: dict[Key, list[PillLabel]] = defaultdict(list)
    broken: set[Key] = set()
    for file, result in zip(labels, parsed, strict=True):
        if isinstance(result, str):
            problems.add("broken_json", file.path.relative_to(root), result)
            broken.add(file.key)
        elif file.key not in images:
            problems.add("orphan_labels", file.path.relative_to(root), "no image with this name")
        else:
            by_key[file.key].append(result)
    say(f"parsed {len(labels)} labels ({problems.counts['broken_json']} broken)")

    infos = _probe(images, verify_images, workers, problems, root)
    rows, drugs = _join(images, by_key, broken, infos, problems=problems, root=root)
    classes = _class_index(rows, out, rebuild_classes)
    report = _report(root, rows, classes, problems, time.perf_counter() - started)
    result = ScanResult(rows, drugs.build(), classes, report)
    if out is not None:
        write_scan(result, Path(out))
    return result


def _probe(images: dict[Key, Path], verify: str, workers: int, problems: Problems,
           root: Path) -> dict[Key, tuple[int, int] | None]:
    """Image sizes from the file headers; unreadable files are reported and dropped."""
    if verify == "none":
        return {key: None for key in images}
    keys = list(images)
    results = probe_paths([images[k] for k in keys], workers)
    infos: dict[Key, tuple[int, int] | None] = {}
    for key, result in zip(keys, results, strict=True):
        if isinstance(result, Exception):
            problems.add("unreadable_images", images[key].relative_to(root), str(result))
        else:
            infos[key] = (result.width, result.height)
    return infos


def _join(images: dict[Key, Path], by_key: dict[Key, list[PillLabel]], broken: set[Key],
          infos: dict[Key, tuple[int, int] | None], *, problems: Problems,
          root: Path) -> tuple[list[ManifestRow], DrugTableBuilder]:
    rows: list[ManifestRow] = []
    drugs = DrugTableBuilder()
    for key, path in sorted(images.items(), key=lambda kv: str(kv[1])):
        if key not in infos:
            continue  # unreadable: already reported
        split, kind, folder, stem = key
        rel = path.relative_to(root)
        pills_labels = _dedupe(by_key.get(key, []))
        if key in broken and kind == "combo" and pills_labels:
            # A combination missing one pill's label would teach the detector that the
            # pill is background: drop the whole image.
            problems.add("combo_with_broken_label", rel, "a pill label is broken")
            continue
        if not pills_labels:
            reason = "its label JSON is broken" if key in broken else "no label JSON"
            problems.add("unlabelled_images" if key in broken else "orphan_images", rel, reason)
            continue
        if kind == "single" and len(pills_labels) > 1:
            problems.add("single_with_several_labels", rel, f"{len(pills_labels)} labels")
        width, height = infos[key] or (pills_labels[0].image_width, pills_labels[0].image_height)
        allowed = set(combo_codes(folder)) if kind == "combo" else {folder}
        pills = []
        for label in pills_labels:
            if label.k_code not in allowed:
                problems.add("label_folder_mismatch", rel, f"{label.k_code} not in {folder}")
            if (label.image_width, label.image_height) != (width, height):
                problems.add("size_mismatch", rel, f"label says {label.image_width}x"
                             f"{label.image_height}, file is {width}x{height}")
            if label.extra_boxes:
                problems.add("extra_boxes", rel, f"{label.extra_boxes} boxes beyond the first")
            pills.append(Pill(label.k_code, _clip(label.bbox, width, height, problems, rel)))
            drugs.add(label.k_code, label.drug)
        pills.sort(key=lambda p: (p.bbox[0], p.bbox[1]))
        rows.append(ManifestRow(rel.as_posix(), split, kind, width, height, pills,
                                parse_file_name(stem)))
    return rows, drugs


def _dedupe(labels: list[PillLabel]) -> list[PillLabel]:
    """The same pill labelled twice (the same zip extracted twice) counts once."""
    seen: set[tuple[str, tuple[float, ...]]] = set()
    out = []
    for label in labels:
        ident = (label.k_code, tuple(label.bbox))
        if ident not in seen:
            seen.add(ident)
            out.append(label)
    return out


def _clip(box: list[float], width: int, height: int, problems: Problems, rel: Path) -> list[float]:
    x, y, w, h = box
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    if (x0, y0, x1, y1) != (x, y, x + w, y + h):
        problems.add("bbox_clipped", rel, f"{box} outside {width}x{height}")
    return [x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)]


def _class_index(rows: list[ManifestRow], out: Path | None, rebuild: bool) -> ClassIndex:
    train_codes = {c for r in rows if r.split == "train" for c in r.k_codes}
    existing = None if out is None or rebuild else Path(out) / CLASSES_FILE
    if existing is not None and existing.is_file():
        index, added = ClassIndex.load(existing).extended(train_codes)
        if added:
            logger.info("decision: class index extended by %d new K-codes (existing ids kept; "
                        "--rebuild-classes starts afresh)", len(added))
        return index
    return ClassIndex.build(train_codes)


def _report(root: Path, rows: list[ManifestRow], classes: ClassIndex, problems: Problems,
            seconds: float) -> dict[str, Any]:
    per_class = Counter(c for r in rows if r.split == "train" for c in r.k_codes)
    counts = sorted(per_class.values()) or [0]
    val_codes = {c for r in rows if r.split == "val" for c in r.k_codes}
    report: dict[str, Any] = {
        "root": str(root.resolve()),
        "images": len(rows),
        "pills": sum(len(r.pills) for r in rows),
        "classes": len(classes),
        "class_index_hash": classes.hash,
        "splits": dict(Counter(r.split for r in rows)),
        "kinds": dict(Counter(r.kind for r in rows)),
        "split_kinds": {f"{s}/{k}": n for (s, k), n in
                        sorted(Counter((r.split, r.kind) for r in rows).items())},
        "train_images_per_class": {"min": counts[0], "median": counts[len(counts) // 2],
                                   "max": counts[-1]},
        "val_only_classes": sorted(val_codes - set(classes.k_codes)),
        "seconds": round(seconds, 2),
    }
    for kind in ("orphan_images", "orphan_labels", "broken_json", "unreadable_images"):
        report[kind] = problems.counts.get(kind, 0)
    report["other_problems"] = {k: v for k, v in sorted(problems.counts.items()) if k not in report}
    report["examples"] = {k: v for k, v in sorted(problems.examples.items())}
    for split in ("train", "val"):
        report["splits"].setdefault(split, 0)
    for kind in ("single", "combo"):
        report["kinds"].setdefault(kind, 0)
    return report


def write_scan(result: ScanResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(result.rows, out / MANIFEST_FILE)
    save_drugs(result.drugs, out)
    result.classes.save(out)
    write_json(result.report, out / REPORT_FILE)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report as a few human lines for the console."""
    s, k = report["splits"], report["kinds"]
    per = report["train_images_per_class"]
    return [
        f"images {report['images']} (train {s['train']}, val {s['val']}; "
        f"single {k['single']}, combo {k['combo']}), pills {report['pills']}, "
        f"classes {report['classes']} (index {report['class_index_hash']})",
        f"train images per class: min {per['min']}, median {per['median']}, max {per['max']}",
        f"dirty data: orphan images {report['orphan_images']}, orphan labels "
        f"{report['orphan_labels']}, broken JSON {report['broken_json']}, unreadable images "
        f"{report['unreadable_images']}" + "".join(
            f", {name.replace('_', ' ')} {n}" for name, n in report["other_problems"].items()),
        f"scanned in {report['seconds']} s",
    ]
