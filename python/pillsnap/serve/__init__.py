"""Serving: the FastAPI proxy with embedded ONNX Runtime or Triton backends.

Entry point (issue 6): ``python -m pillsnap.serve api``.
"""

from __future__ import annotations
