"""The Triton backend: the ``pill_single`` / ``pill_combo`` ensembles over HTTP.

Contract (``triton_models/``): input ``IMAGE`` (UINT8, [-1], the encoded upload) and
``TOP_K`` (INT32, [1]); output ``RESULT`` (BYTES, [1]): UTF-8 JSON with ``pills``,
``reason``, ``recommend_combo`` and ``image``. A bad image is a Triton error whose message
starts with ``unsupported:``, ``corrupt:`` or ``too_large:`` after Triton's ``in ensemble
'<name>', `` (``triton_contract.error_kind`` reads it); each ensemble's config has the
parameter ``pillsnap_model_version``. Readiness is ``/v2/models/<ensemble>/ready`` (the server
being up says nothing about the models).

One ``tritonclient.http.aio`` client per process, created in the app's event loop; every
call is bounded by ``timeout_s``. Unreachable, not ready or slow: ``BackendUnavailable`` /
``BackendTimeout`` (503), and the next request tries again, so the proxy recovers by itself
when Triton comes back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import anyio
import numpy as np

from pillsnap.contract import ops
from pillsnap.errors import IMAGE_INPUT_ERRORS, ModelError
from pillsnap.infer.triton_contract import (
    ENSEMBLE_OF,
    INPUT_IMAGE,
    INPUT_TOP_K,
    OUTPUT_RESULT,
    VERSION_PARAMETER,
    error_kind,
)
from pillsnap.serve.backends.base import Readiness
from pillsnap.serve.errors import BackendTimeout, BackendUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TritonBackend:
    name = "triton"

    def __init__(self, url: str, *, timeout_s: float, connections: int = 64) -> None:
        self.url = url.removeprefix("http://").rstrip("/")
        if "://" in self.url:
            raise ModelError(f"TRITON_URL {url!r}: give host:port (HTTP), not another scheme")
        self.timeout_s = timeout_s
        self.connections = connections
        self._client: Any = None
        self._versions: dict[str, str] = {}

    @property
    def pipelines(self) -> tuple[str, ...]:
        return tuple(ENSEMBLE_OF)

    @property
    def concurrency(self) -> int:
        # the connection pool: past it aiohttp would queue requests where no one sees them
        return self.connections

    async def start(self) -> None:
        from tritonclient.http.aio import InferenceServerClient

        # connects lazily: a Triton that is not up yet is a 503 on /ready, not a failed start
        self._client = InferenceServerClient(self.url, conn_limit=self.connections,
                                             conn_timeout=self.timeout_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def readiness(self) -> Readiness:
        try:
            states = {name: await self._call(self._live().is_model_ready(model))
                      for name, model in ENSEMBLE_OF.items()}
        except BackendUnavailable as exc:
            return Readiness(False, str(exc))
        missing = [ENSEMBLE_OF[n] for n, ok in states.items() if not ok]
        if missing:
            return Readiness(False, f"Triton at {self.url} is up but {', '.join(missing)} "
                             "not ready")
        return Readiness(True, f"Triton at {self.url}: {', '.join(ENSEMBLE_OF.values())} ready")

    async def model_version(self) -> str | None:
        return await self._version(ENSEMBLE_OF["single"])

    async def predict(self, data: bytes, *, pipeline: str, top_k: int,
                      request_id: str | None = None) -> ops.Prediction:
        from tritonclient.http import InferInput, InferRequestedOutput

        model = ENSEMBLE_OF[pipeline]
        image = InferInput(INPUT_IMAGE, [len(data)], "UINT8")
        image.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8), binary_data=True)
        k = InferInput(INPUT_TOP_K, [1], "INT32")
        k.set_data_from_numpy(np.array([top_k], dtype=np.int32), binary_data=True)
        start = time.perf_counter()
        result = await self._call(self._live().infer(
            model, [image, k], outputs=[InferRequestedOutput(OUTPUT_RESULT, binary_data=True)],
            request_id=request_id or ""))
        elapsed = round((time.perf_counter() - start) * 1000, 3)
        raw = result.as_numpy(OUTPUT_RESULT)
        if raw is None or raw.size != 1:
            raise ModelError(f"{model} returned no RESULT; is triton_models/ out of date?")
        answer: ops.Answer = json.loads(raw.reshape(-1)[0])
        return ops.prediction(answer, pipeline=pipeline, model_version=await self._version(model),
                              timing_ms={"triton": elapsed})

    async def _version(self, model: str) -> str | None:
        if model not in self._versions:
            try:
                config = await self._call(self._live().get_model_config(model))
            except (BackendUnavailable, ModelError):
                return None
            value = config.get("parameters", {}).get(VERSION_PARAMETER, {}).get("string_value")
            if not value:
                return None
            self._versions[model] = str(value)
        return self._versions[model]

    def _live(self) -> Any:
        if self._client is None:
            raise BackendUnavailable("the Triton client is closed")
        return self._client

    async def _call(self, call: Awaitable[T]) -> T:
        """One Triton call with the deadline and the error mapping."""
        from tritonclient.utils import InferenceServerException

        try:
            with anyio.fail_after(self.timeout_s):
                return await call
        except TimeoutError:
            raise BackendTimeout(f"Triton at {self.url} did not answer within "
                                 f"{self.timeout_s:g} s") from None
        except InferenceServerException as exc:
            raise _mapped(exc, self.url) from None
        except OSError as exc:  # aiohttp's connection errors are OSErrors
            raise BackendUnavailable(f"cannot reach Triton at {self.url}: "
                                     f"{exc.__class__.__name__}") from None
        except Exception as exc:
            if exc.__class__.__module__.startswith("aiohttp"):
                raise BackendUnavailable(f"Triton at {self.url} failed: {exc}") from None
            raise


def _mapped(exc: Any, url: str) -> Exception:
    message = str(exc.message() if callable(getattr(exc, "message", None)) else exc)
    kind = error_kind(message)
    if kind is not None:  # a bad upload: the text after "<kind>: " is the user's message
        return IMAGE_INPUT_ERRORS[kind](message.split(f"{kind}: ", 1)[1].strip())
    status = str(exc.status() or "") if callable(getattr(exc, "status", None)) else ""
    if status == "400":
        return ModelError(f"Triton at {url} refused the request ({status}): {message}")
    return BackendUnavailable(f"Triton at {url} failed ({status or 'no status'}): {message}")
