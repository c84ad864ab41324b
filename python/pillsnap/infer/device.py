"""Where ONNX Runtime runs the models: ``serve.device`` turned into execution providers.

    python -m pillsnap.serve api serve.device=cuda        # the embedded backend on the GPU
    python -m pillsnap.bench serve --export artifacts/export --device cuda

- ``cpu``: the CPU provider only.
- ``cuda``: ONNX Runtime's CUDA provider, the CPU for what it cannot run.
- ``tensorrt``: TensorRT with FP16 engines, then CUDA, then the CPU. The first start builds
  the engines (minutes for EfficientNetV2-S) into ``~/.cache/pillsnap/tensorrt``; later
  starts load them from there.
- ``auto`` (the default): CUDA when this ONNX Runtime has it, else the CPU.

The GPU providers come with the ``onnxruntime-gpu`` package (``pip install ".[gpu]"`` in
a serving environment of its own: it and ``onnxruntime`` install the same module). A device
that this ONNX Runtime cannot give falls back to the next one with one ``fallback:`` line
(asked for explicitly) or ``decision:`` line (``auto``). A provider that is listed but cannot start
(no driver, no GPU) makes ONNX Runtime itself fall back to the CPU with a warning of its
own; ``active_device`` reads what a session really got.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import onnxruntime as ort

from pillsnap.config.schema import Device
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)

DEVICES: tuple[str, ...] = get_args(Device)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
_WANTS = {"cpu": (CPU,), "cuda": (CUDA, CPU), "tensorrt": (TENSORRT, CUDA, CPU),
          "auto": (CUDA, CPU)}
_NAMES = {CPU: "cpu", CUDA: "cuda", TENSORRT: "tensorrt"}
TENSORRT_CACHE = Path.home() / ".cache" / "pillsnap" / "tensorrt"


def providers_for(device: str, available: Sequence[str] | None = None) -> list[Any]:
    """The provider list for ``InferenceSession(providers=...)``: what ``device`` asks for
    that this ONNX Runtime has, best first, always ending with the CPU."""
    if device not in _WANTS:
        raise ValueError(f"device={device!r}: choose one of {', '.join(DEVICES)}")
    have = set(ort.get_available_providers() if available is None else available)
    wanted = _WANTS[device]
    chosen = [p for p in wanted if p in have or p == CPU]
    if chosen[0] != wanted[0]:
        missing = ", ".join(_NAMES[p] for p in wanted if p not in chosen)
        log_decision(logger, "serve.device", _NAMES[chosen[0]],
                     f"asked for {device}; this onnxruntime {ort.__version__} has no "
                     f"{missing} provider (pip install onnxruntime-gpu for the GPU)",
                     fallback=device != "auto")
    if chosen[0] == TENSORRT:  # FP16, as the spec's GPU latency target assumes
        options = {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                   "trt_engine_cache_path": str(TENSORRT_CACHE)}
        return [(TENSORRT, options), *chosen[1:]]
    return chosen


def device_name(provider: str) -> str:
    """``cpu``, ``cuda`` or ``tensorrt`` for a provider's name (other names as they are)."""
    return _NAMES.get(provider, provider)


def active_device(session: ort.InferenceSession) -> str:
    """The device a session really runs on first."""
    return device_name(session.get_providers()[0])


def confirm_started(session: ort.InferenceSession, device: str, providers: Sequence[Any]) -> None:
    """One line when the first provider was listed but did not start (no driver, no GPU):
    ONNX Runtime then fell back to the next one by itself."""
    first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    if active_device(session) != device_name(first):
        log_decision(logger, "serve.device", active_device(session),
                     f"the {device_name(first)} provider did not start; see ONNX Runtime's "
                     "warning above", fallback=device != "auto")
