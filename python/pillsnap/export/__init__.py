"""Export: ONNX (opset 17) with parity checks, and the Triton model repository.

    python -m pillsnap.export --ckpt runs/exp01/best.pt --det-ckpt runs/exp01/det/best.pt
    python -m pillsnap.export --triton       # the Triton model repository (``triton/``)

One folder holds what a server needs (``run.py``); ``pillsnap.infer`` serves it.
"""

from __future__ import annotations
