"""The embedded backend: ``OnnxPipeline`` in this process, run in worker threads.

ONNX Runtime releases the GIL while it computes, so a few threads keep the event loop free
for other requests. A call that outlives ``timeout_s`` is answered with 503 at once; its
thread finishes in the background (a running ONNX Runtime call cannot be interrupted).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from pillsnap.errors import ModelError
from pillsnap.infer.pipeline import OnnxPipeline
from pillsnap.serve.backends.base import Readiness, normalise
from pillsnap.serve.errors import BackendTimeout, BackendUnavailable


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, folder: Path | None, *, timeout_s: float, max_pixels: int | None,
                 threads: int = 0, workers: int | None = None) -> None:
        self.folder = folder
        self.timeout_s = timeout_s
        self.max_pixels = max_pixels
        self.threads = threads
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pipe: OnnxPipeline | None = None
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def pipelines(self) -> tuple[str, ...]:
        return self._pipe.pipelines if self._pipe is not None else ()

    async def start(self) -> None:
        if self.folder is None:
            raise ModelError("the embedded backend needs an export folder: set MODEL_PATH "
                             "(or serve.model_path) to the output of python -m pillsnap.export, "
                             "or TRITON_URL to use Triton")
        folder = self.folder
        self._pipe = await anyio.to_thread.run_sync(functools.partial(
            OnnxPipeline.open, folder, threads=self.threads, max_pixels=self.max_pixels))
        self._limiter = anyio.CapacityLimiter(self.workers)

    async def close(self) -> None:
        self._pipe = None

    async def readiness(self) -> Readiness:
        if self._pipe is None:
            return Readiness(False, "models not loaded")
        return Readiness(True, f"ONNX Runtime in-process, {self.folder}")

    async def model_version(self) -> str | None:
        return self._pipe.bundle.model_version if self._pipe is not None else None

    async def predict(self, data: bytes, *, pipeline: str, top_k: int,
                      request_id: str | None = None) -> dict[str, Any]:
        pipe, limiter = self._pipe, self._limiter
        if pipe is None or limiter is None:
            raise BackendUnavailable("the embedded models are not loaded")
        call = functools.partial(pipe.predict, data, pipeline=pipeline, top_k=top_k)
        try:
            with anyio.fail_after(self.timeout_s):
                answer = await anyio.to_thread.run_sync(call, limiter=limiter,
                                                        abandon_on_cancel=True)
        except TimeoutError:
            raise BackendTimeout(f"the model did not answer within {self.timeout_s:g} s; "
                                 "the server is overloaded, try again shortly") from None
        return normalise(answer, pipeline, pipe.bundle.model_version)
