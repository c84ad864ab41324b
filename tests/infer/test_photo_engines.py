"""The embedded pipeline answers alike on the Rust photo engine and on Pillow.

    python -m pytest tests/infer/test_photo_engines.py -q

On the tests' real photos (the tiny dataset's PNGs, and the same photos as JPEG q90), both
exports (``exported``: the detector's own threshold, ``many_export``: 6 boxes on every
photo), both pipelines: the same pills with the same top-1 K-codes, calibrated confidences
within 0.02, detector scores within 0.02 and boxes within 2 photo pixels.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pillsnap.contract import ops, photo
from pillsnap.infer.pipeline import OnnxPipeline

pytestmark = pytest.mark.skipif(not photo.native_available(), reason="extension not built")

CONFIDENCE = 0.02
BOX_PX = 2.0


def _upload(path: Path, fmt: str) -> bytes:
    if fmt == "png":
        return path.read_bytes()
    buf = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _answer(pipe: OnnxPipeline, data: bytes, pipeline: str, engine: str,
            monkeypatch: pytest.MonkeyPatch) -> ops.Prediction:
    monkeypatch.setenv(photo.ENGINE_ENV, engine)
    assert pipe.photo(data).engine == engine
    return pipe.predict(data, pipeline=pipeline, top_k=3)


def _same_pills(ours: list[ops.Pill], theirs: list[ops.Pill]) -> None:
    """Each pill matched to the other side's nearest box (near-tied detector scores may
    list them in another order)."""
    assert len(ours) == len(theirs)
    left = list(ours)
    for pill in theirs:
        if "bbox" in pill:
            near = min(left, key=lambda p: np.abs(np.subtract(p["bbox"], pill["bbox"])).max())
            assert np.abs(np.subtract(near["bbox"], pill["bbox"])).max() <= BOX_PX
            assert near["det_confidence"] == pytest.approx(pill["det_confidence"],
                                                           abs=CONFIDENCE)
        else:
            near = left[0]
        left.remove(near)
        assert near["top1"]["k_code"] == pill["top1"]["k_code"]
        assert near["top1"]["confidence"] == pytest.approx(pill["top1"]["confidence"],
                                                           abs=CONFIDENCE)


@pytest.mark.parametrize("case", ["single.png", "combo.png", "single.jpeg", "combo.jpeg"])
def test_both_engines_give_the_same_answer(exported: Path, many_export: Path,
                                           pill_photos: dict[str, Path], case: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    kind, fmt = case.split(".")
    data = _upload(pill_photos[kind], fmt)
    for export in (exported, many_export):
        pipe = OnnxPipeline.open(export)
        for pipeline in pipe.pipelines:
            ours = _answer(pipe, data, pipeline, "native", monkeypatch)
            theirs = _answer(pipe, data, pipeline, "pillow", monkeypatch)
            assert (ours["image"], ours["reason"], ours["recommend_combo"]) == \
                (theirs["image"], theirs["reason"], theirs["recommend_combo"])
            _same_pills(ours["pills"], theirs["pills"])
