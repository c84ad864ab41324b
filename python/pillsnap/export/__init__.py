"""Export: ONNX (opset 17) with parity checks, and the Triton model repository.

Entry point (issue 5): ``python -m pillsnap.export --ckpt RUN/best.pt --triton``.
"""

from __future__ import annotations
