"""The AIHub folder layout, file names and label JSON of the synthetic data set.

One :class:`Job` is one photo; :func:`write_job` renders it and writes the PNG plus one label
JSON per pill exactly where the extracted AIHub zips put them::

    OUT/1.Training/원천데이터/TS_1_단일/K-000123/K-000123_0_2_1_0_70_090_200.png
    OUT/1.Training/라벨링데이터/TL_1_단일/K-000123_json/K-000123_0_2_1_0_70_090_200.json
    OUT/1.Training/원천데이터/TS_1_조합/K-000123-004567/K-000123-004567_0_1_0_0_75_000_200.png
    OUT/1.Training/라벨링데이터/TL_1_조합/K-000123-004567_json/K-000123/<same stem>.json
    OUT/2.Validation/... with VS_/VL_

Run through ``python -m pillsnap.data synth --out DIR ...`` (see :mod:`pillsnap.data.synth`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pillsnap.data.synth.catalog import Drug
from pillsnap.data.synth.render import (
    BACKGROUNDS,
    ELEVATIONS,
    LIGHTS,
    ROTATIONS,
    Shot,
    render_photo,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
KINDS = ("single", "combo")
_SPLIT_DIRS = {"train": ("1.Training", "TS", "TL"), "val": ("2.Validation", "VS", "VL")}
_KIND_DIRS = {"single": "단일", "combo": "조합"}
SOURCE_DIR, LABEL_DIR = "원천데이터", "라벨링데이터"
FORM, SIZE = 0, 200  # the 형태 and 크기 file-name fields: constant in the real data too
# Every distinct file name a folder can hold: background x light x side x elevation x rotation.
STEMS_PER_FOLDER = len(BACKGROUNDS) * len(LIGHTS) * 2 * len(ELEVATIONS) * len(ROTATIONS)
_RENDER_STREAM = 0x5EED


@dataclass(frozen=True)
class Job:
    """One photo to render and write: everything a worker process needs, picklable."""

    root: Path
    split: str  # "train" or "val"
    kind: str  # "single" or "combo"
    index: int  # position among the split's photos of this kind: keys the random stream
    seed: int
    drugs: tuple[Drug, ...]  # in drawing order
    shot: Shot

    @property
    def folder(self) -> str:
        return folder_name(self.drugs)

    @property
    def stem(self) -> str:
        return stem(self.folder, self.shot)


def folder_name(drugs: tuple[Drug, ...] | list[Drug]) -> str:
    """``K-000123`` for one drug, ``K-000123-004567-008910`` for a combination (sorted)."""
    numbers = sorted(d.k_code[2:] for d in drugs)
    return "K-" + "-".join(numbers)


def stem(folder: str, shot: Shot) -> str:
    """``K-CODE_배경_조명_면_형태_앙각_회전각_크기`` as in the AIHub file names."""
    return (f"{folder}_{shot.background}_{shot.light}_{shot.side}_{FORM}_{shot.elevation}_"
            f"{shot.rotation:03d}_{SIZE}")


def image_path(job: Job) -> Path:
    top, source, _ = _SPLIT_DIRS[job.split]
    kind = _KIND_DIRS[job.kind]
    return job.root / top / SOURCE_DIR / f"{source}_1_{kind}" / job.folder / f"{job.stem}.png"


def label_path(job: Job, drug: Drug) -> Path:
    """Singles: ``K-x_json/<stem>.json``; combinations: ``K-x-y_json/K-x/<stem>.json``."""
    top, _, label = _SPLIT_DIRS[job.split]
    base = job.root / top / LABEL_DIR / f"{label}_1_{_KIND_DIRS[job.kind]}" / f"{job.folder}_json"
    if job.kind == "combo":
        base = base / drug.k_code
    return base / f"{job.stem}.json"


class StemAllocator:
    """Draws photo conditions whose file names are unique within each folder."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._used: dict[str, set[str]] = {}

    def draw(self, folder: str, rng: np.random.Generator) -> Shot:
        used = self._used.setdefault(folder, set())
        if len(used) >= STEMS_PER_FOLDER:
            raise RuntimeError(f"folder {folder} already holds all {STEMS_PER_FOLDER} file names")
        for _ in range(20):
            shot = self._shot(*(int(rng.integers(n)) for n in self._sizes()))
            if stem(folder, shot) not in used:
                used.add(stem(folder, shot))
                return shot
        # Crowded folder: take the first free name after a random start instead of guessing on.
        start = int(rng.integers(STEMS_PER_FOLDER))
        for k in range(STEMS_PER_FOLDER):
            shot = self._shot(*np.unravel_index((start + k) % STEMS_PER_FOLDER, self._sizes()))
            if stem(folder, shot) not in used:
                used.add(stem(folder, shot))
                return shot
        raise AssertionError("unreachable: a free name exists")

    @staticmethod
    def _sizes() -> tuple[int, ...]:
        return (len(BACKGROUNDS), len(LIGHTS), 2, len(ELEVATIONS), len(ROTATIONS))

    def _shot(self, background: int, light: int, side: int, elevation: int,
              rotation: int) -> Shot:
        return Shot(width=self.width, height=self.height, background=int(background),
                    light=int(light), side=int(side), elevation=ELEVATIONS[int(elevation)],
                    rotation=ROTATIONS[int(rotation)])


def label_json(job: Job, drug: Drug, box: tuple[int, int, int, int]) -> dict:
    """The AIHub label of one pill in one photo (COCO-like, one annotation)."""
    shot = job.shot
    file_name = f"{job.stem}.png"
    image = {
        "file_name": file_name,
        "width": shot.width,
        "height": shot.height,
        "imgfile": file_name,
        "drug_N": drug.k_code,
        "drug_S": "정상알약",
        "back_color": BACKGROUNDS[shot.background],
        "drug_dir": "앞면" if shot.side == 0 else "뒷면",
        "light_color": LIGHTS[shot.light],
        "camera_la": shot.elevation,
        "camera_lo": 0,
        "size": SIZE,
        **drug.fields,
        "id": 1,  # the real files number every image and annotation 1
    }
    x, y, w, h = (int(v) for v in box)
    annotation = {"area": w * h, "iscrowd": 0, "bbox": [x, y, w, h], "category_id": 1,
                  "ignore": 0, "segmentation": [], "id": 1, "image_id": 1}
    return {"images": [image], "type": "instances", "annotations": [annotation],
            "categories": [{"supercategory": "pill", "id": 1, "name": "Drug"}]}


def render_rng(job: Job) -> np.random.Generator:
    """The photo's own random stream: the same whichever process renders it, in any order."""
    key = [_RENDER_STREAM, job.seed, SPLITS.index(job.split), KINDS.index(job.kind), job.index]
    return np.random.default_rng(key)


def write_job(job: Job) -> dict:
    """Render one photo, write its PNG and labels; return its ``synth_truth.jsonl`` record."""
    image, boxes = render_photo(job.drugs, job.shot, render_rng(job))
    path = image_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    # "x" mode: a name clash is a bug and must fail loudly, never overwrite a file.
    with path.open("xb") as f:
        image.save(f, format="PNG", compress_level=1)
    for drug, box in zip(job.drugs, boxes, strict=True):
        label = label_path(job, drug)
        label.parent.mkdir(parents=True, exist_ok=True)
        with label.open("x", encoding="utf-8") as f:
            json.dump(label_json(job, drug, box), f, ensure_ascii=False, indent=4)
    return {
        "path": path.relative_to(job.root).as_posix(),
        "split": job.split,
        "kind": job.kind,
        "pills": [{"k_code": d.k_code, "bbox": [int(v) for v in b]}
                  for d, b in zip(job.drugs, boxes, strict=True)],
    }
