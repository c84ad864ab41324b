"""Inference without torch: the shared pre/post-processing ops and the ONNX Runtime pipeline.

    from pillsnap.infer.pipeline import OnnxPipeline
    pipe = OnnxPipeline.open(Path("artifacts/export"))
    result = pipe.predict(open("photo.jpg", "rb").read(), pipeline="combo", top_k=5)

The shared ops live in ``pillsnap.contract`` (numpy + Pillow), which export copies into
Triton's python models.
"""

from __future__ import annotations
