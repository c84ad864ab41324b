"""Serving: the FastAPI proxy with embedded ONNX Runtime or Triton backends.

Entry points: ``python -m pillsnap.serve triton`` (``triton_server.py``: tritonserver on
the model repository, docs/triton.md); ``python -m pillsnap.serve api`` (issue 6).
"""

from __future__ import annotations

# What ``python -m pillsnap.serve api`` prints once it listens (uvicorn's line): its URL
API_READY_LINE = r"Uvicorn running on (http://\S+)"
