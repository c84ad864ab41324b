"""Serving's image work side by side: today's Pillow path against the Rust photo engine.

    python -m pillsnap.bench serve --export artifacts/export   # prints these rows too

One row per photo: open the upload, letterbox it for the detector and cut the classifier's
crops (what ``OnnxPipeline.predict`` and Triton's preprocess + crop_classify do before and
between the models), on each engine (``pillsnap.contract.photo``), runs interleaved so both
see the same machine load. The crops are those of the pipeline (single: one pill; combo:
every pill), each pill grown by the crop margin, from the photos' labelled pills (the
synthetic photos), else from the export's detector (Pillow path), else one centred
pill-size region.
"""

from __future__ import annotations

import functools
from typing import Any

from pillsnap.bench.latency import interleaved, percentiles
from pillsnap.bench.table import markdown_table
from pillsnap.contract import ops
from pillsnap.contract.photo import PillowPhoto, native_available, open_photo
from pillsnap.infer.pipeline import OnnxPipeline

ENGINES = ("pillow", "native")
# (label, photo key in bench.serve.sample_photos, pipeline whose crops are cut)
CASES = (("JPEG, single-pill photo", "single", "single"),
         ("JPEG, combination photo", "combo", "combo"),
         ("PNG (AIHub's format), single-pill photo", "png", "single"))


def regions(pipe: OnnxPipeline, data: bytes, pipeline: str,
            pills: list[list[float]] | None = None) -> list[ops.Region]:
    """The crops ``pipeline`` cuts from ``data``: around ``pills`` (labelled ``[x, y, w,
    h]``) when given, else the detector's boxes, else one centred pill-size region."""
    photo = PillowPhoto.decode(data)
    if pills:
        chosen_pills = pills[:1] if pipeline == "single" else pills
        margin = pipe.recipe.crop.margin
        return [ops.pill_crop(p, photo.width, photo.height, margin) for p in chosen_pills]
    boxes, scores = pipe.detect(photo) if pipe.detector is not None else (None, None)
    chosen = ops.select_pills(pipeline, boxes, scores, photo.width, photo.height,
                              margin=pipe.recipe.crop.margin).regions if boxes is not None else None
    if not chosen:
        side = min(photo.width, photo.height) / 5
        centre = ((photo.width - side) / 2, (photo.height - side) / 2, side, side)
        chosen = [ops.pill_crop(centre, photo.width, photo.height, pipe.recipe.crop.margin)]
    return chosen


def _work(pipe: OnnxPipeline, data: bytes, crops: list[ops.Region], engine: str) -> None:
    photo = open_photo(data, max_pixels=pipe.max_pixels, engine=engine)
    if pipe.recipe.detector is not None:
        photo.letterbox(pipe.recipe.detector.size)
    photo.crops(crops, size=pipe.recipe.crop.size, short_side=pipe.recipe.crop.short_side)


def figures(pipe: OnnxPipeline, photos: dict[str, bytes], pills: dict[str, list[list[float]]],
            warmup: int, runs: int) -> dict[str, dict[str, Any]]:
    """Per photo: ``{"crops": n, "bytes": len, "pillow": percentiles, "native": ...}`` (no
    ``native`` where the extension is not installed)."""
    engines = ENGINES if native_available() else ENGINES[:1]
    rows: dict[str, dict[str, Any]] = {}
    for label, key, pipeline in CASES:
        if key not in photos:
            continue
        data = photos[key]
        crops = regions(pipe, data, pipeline, pills.get(key))
        samples = interleaved({engine: functools.partial(_work, pipe, data, crops, engine)
                               for engine in engines}, warmup, runs)
        rows[label] = {"crops": len(crops), "bytes": len(data),
                       **{engine: percentiles(s) for engine, s in samples.items()}}
    return rows


def print_table(rows: dict[str, dict[str, Any]], size: int | None) -> None:
    letterbox = f"letterbox {size} + " if size else ""
    lines = [("photo: decode + " + letterbox + "crops", "crops", "Pillow p50 ms",
              "Pillow p95 ms", "native p50 ms", "native p95 ms", "p50 speed-up")]
    for label, row in rows.items():
        native = row.get("native")
        lines.append((f"{label} ({row['bytes'] / 1024:.0f} KiB)", str(row["crops"]),
                      f"{row['pillow']['p50']:.2f}", f"{row['pillow']['p95']:.2f}",
                      f"{native['p50']:.2f}" if native else "-",
                      f"{native['p95']:.2f}" if native else "-",
                      f"{row['pillow']['p50'] / native['p50']:.1f}x" if native else "-"))
    print(markdown_table(lines))
