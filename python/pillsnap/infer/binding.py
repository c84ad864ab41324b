"""How the pipeline hands tensors to ONNX Runtime: ``serve.io_binding``.

    python -m pillsnap.serve api serve.device=cuda serve.io_binding=on
    python -m pillsnap.bench serve --export artifacts/export --device cuda --io-binding on

- ``off``: ``session.run(names, feeds)``. On a GPU, ONNX Runtime copies each input from host
  memory to the device, and each output back, inside the call.
- ``on``: IO binding. Each input is copied once into an ``OrtValue`` on the session's device
  before the call, the outputs are bound on that device and copied to the host once after
  it. ONNX Runtime then allocates nothing per call for the transfers.
- ``auto`` (the default): ``off`` on the CPU, where the two are the same memory. On a GPU
  ``warm_up`` times both on the model's own input shape and keeps the faster, one
  ``decision:`` line per model, as loader threads are autotuned: which one wins depends on
  the GPU, the driver and the input's size, so it is measured, not assumed.

``Runner.busy_s`` sums the time spent inside ONNX Runtime calls. ``bench serve`` reads it
over one caller's timed runs to split an answer into model time and everything else (the
CPU share of a GPU answer); with several callers at once it is only approximate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from statistics import median
from typing import Protocol, get_args

import numpy as np
import onnxruntime as ort

from pillsnap.config.schema import IoBinding
from pillsnap.infer.device import active_device
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)

IO_BINDINGS: tuple[str, ...] = get_args(IoBinding)
TRIAL_RUNS = 10  # timed runs of each way for auto, after 3 untimed ones


class ModelRunner(Protocol):
    """What the pipeline asks of a model: ``Runner`` here, a PyTorch stand-in in
    ``pillsnap.bench.standin``."""

    where: str  # cpu, cuda or tensorrt: where the model really runs
    outputs: list[str]  # the graph's output names
    bound: bool
    busy_s: float

    def run(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs ``names`` for ``feeds``, as host numpy arrays."""

    def settle(self, model: str, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> None:
        """Decide what ``auto`` left open, timing ``feeds``."""


class Runner:
    """One ONNX Runtime session run with or without IO binding (``ModelRunner``)."""

    def __init__(self, session: ort.InferenceSession, binding: IoBinding) -> None:
        if binding not in IO_BINDINGS:
            raise ValueError(f"io_binding={binding!r}: choose one of {', '.join(IO_BINDINGS)}")
        self.session = session
        self.where = active_device(session)
        # the bound tensors live where the session computes: TensorRT's too are CUDA memory
        self.device = "cpu" if self.where == "cpu" else "cuda"
        self.outputs = [o.name for o in session.get_outputs()]
        self.mode: IoBinding = binding
        self.bound = binding == "on"  # auto: off until warm_up measured it
        self.busy_s = 0.0

    def run(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs ``names`` for ``feeds``, as host numpy arrays either way."""
        started = time.perf_counter()
        try:
            return self._bound(names, feeds) if self.bound else self._plain(names, feeds)
        finally:
            self.busy_s += time.perf_counter() - started

    def _plain(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(list(names), dict(feeds)))

    def _bound(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        # a binding per call: the embedded backend runs one session from several threads
        binding = self.session.io_binding()
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device, 0)
            binding.bind_ortvalue_input(name, value)
        for name in names:
            binding.bind_output(name, self.device, 0)
        self.session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def settle(self, model: str, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> None:
        """``auto``: time both ways on ``feeds`` where the session is on a GPU and keep the
        faster, with one ``decision:`` line. ``on``/``off`` and the CPU: nothing to decide."""
        if self.mode != "auto" or self.device == "cpu":
            return
        plain, bound = self.trial(names, feeds)
        self.bound = bound < plain
        log_decision(logger, f"serve.io_binding[{model}]", "on" if self.bound else "off",
                     f"{self.device}: bound {bound:.2f} ms against plain {plain:.2f} ms, "
                     f"median of {TRIAL_RUNS} runs each")

    def trial(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> tuple[float, float]:
        """Median ms of a plain and of a bound run on ``feeds`` (the runs interleaved, so a
        clock change or a neighbour's load hits both alike)."""
        plain: list[float] = []
        bound: list[float] = []
        for i in range(3 + TRIAL_RUNS):
            for way, samples in ((self._plain, plain), (self._bound, bound)):
                started = time.perf_counter()
                way(names, feeds)
                if i >= 3:
                    samples.append((time.perf_counter() - started) * 1000)
        return median(plain), median(bound)
