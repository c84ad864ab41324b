"""The embedded backend: ``OnnxPipeline`` in this process, run in worker threads.

ONNX Runtime releases the GIL while it computes, so a few threads keep the event loop free
for other requests. A call that outlives ``timeout_s`` is answered with 503 at once; its
thread finishes in the background (a running ONNX Runtime call cannot be interrupted).

Release switches: when the model folder is a path through a link (``releases/current/export``,
see ``python -m pillsnap.ops``), the backend notices within ``RELOAD_CHECK_S`` that the link
now points at another release, loads it beside the serving one and swaps them; requests in
flight finish on the old models. A release that fails to load is logged and the old one
keeps serving. So ``python -m pillsnap.ops rollback`` is one command, checked with
``GET /version``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

import anyio
import anyio.to_thread

from pillsnap.contract import ops
from pillsnap.errors import ModelError, PillsnapError
from pillsnap.infer.pipeline import OnnxPipeline
from pillsnap.serve.backends.base import Readiness
from pillsnap.serve.errors import BackendTimeout, BackendUnavailable

logger = logging.getLogger(__name__)

RELOAD_CHECK_S = 1.0  # how often the model folder's real path is looked at (a stat or two)


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, folder: Path | None, *, timeout_s: float, max_pixels: int | None,
                 threads: int = 0, workers: int | None = None, device: str = "cpu",
                 io_binding: str = "auto") -> None:
        self.folder = folder
        self.timeout_s = timeout_s
        self.max_pixels = max_pixels
        self.threads = threads
        self.device = device
        self.io_binding = io_binding
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pipe: OnnxPipeline | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._loaded: Path | None = None  # the real folder the serving models came from
        self._refused: Path | None = None  # a release that failed to load: not retried
        self._checked = 0.0
        self._reload_lock = anyio.Lock()

    @property
    def pipelines(self) -> tuple[str, ...]:
        return self._pipe.pipelines if self._pipe is not None else ()

    @property
    def concurrency(self) -> int:
        return self.workers

    async def start(self) -> None:
        if self.folder is None:
            raise ModelError("the embedded backend needs an export folder: set MODEL_PATH "
                             "(or serve.model_path) to the output of python -m pillsnap.export, "
                             "or TRITON_URL to use Triton")
        self._loaded = self.folder.resolve()
        self._pipe = await self._open(self._loaded)
        self._checked = time.monotonic()
        self._limiter = anyio.CapacityLimiter(self.workers)

    async def _open(self, folder: Path) -> OnnxPipeline:
        return await anyio.to_thread.run_sync(functools.partial(
            OnnxPipeline.open, folder, threads=self.threads, max_pixels=self.max_pixels,
            device=self.device, io_binding=self.io_binding, warm=True))

    async def _follow_release(self) -> None:
        """Load the models again when the model folder now resolves somewhere else."""
        if self.folder is None or time.monotonic() - self._checked < RELOAD_CHECK_S:
            return
        self._checked = time.monotonic()
        target = self.folder.resolve()
        if target in (self._loaded, self._refused) or self._reload_lock.locked():
            return
        async with self._reload_lock:
            try:
                pipe = await self._open(target)
            except PillsnapError as exc:
                self._refused = target
                logger.error("model folder %s now points at %s, which cannot be loaded (%s); "
                             "still serving %s", self.folder, target, exc, self._loaded)
                return
            before = self._pipe.bundle.model_version if self._pipe is not None else None
            self._pipe, self._loaded, self._refused = pipe, target, None
            logger.info("models reloaded: %s -> %s (%s -> %s)", before,
                        pipe.bundle.model_version, self.folder, target)

    async def close(self) -> None:
        self._pipe = None

    async def readiness(self) -> Readiness:
        await self._follow_release()
        if self._pipe is None:
            return Readiness(False, "models not loaded")
        return Readiness(True, f"ONNX Runtime in-process on {self._pipe.device}, {self.folder}")

    async def model_version(self) -> str | None:
        await self._follow_release()
        return self._pipe.bundle.model_version if self._pipe is not None else None

    async def predict(self, data: bytes, *, pipeline: str, top_k: int,
                      request_id: str | None = None) -> ops.Prediction:
        await self._follow_release()
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
        return answer
