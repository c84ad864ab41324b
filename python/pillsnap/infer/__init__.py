"""Inference without torch: the shared pre/post-processing ops and the ONNX Runtime pipeline.

    from pillsnap.infer.pipeline import OnnxPipeline
    pipe = OnnxPipeline("artifacts/export")
    result = pipe.predict(open("photo.jpg", "rb").read(), pipeline="combo", top_k=5)

``ops`` is self-contained (numpy + Pillow) so export can copy it into Triton python models.
"""

from __future__ import annotations
