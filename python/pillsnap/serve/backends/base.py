"""What the routers need from an inference backend, whichever runs the models.

An answer is a ``pillsnap.contract.ops.Prediction`` (built by ``ops.prediction``): ``pipeline``,
``model_version``, ``image``, ``pills``, ``reason``, ``recommend_combo`` and ``timing_ms``
(the backend's own stages). Bad images raise ``pillsnap.errors`` types; a backend that
cannot answer raises ``BackendUnavailable`` / ``BackendTimeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pillsnap.contract import ops


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str


class Backend(Protocol):
    name: str

    @property
    def pipelines(self) -> tuple[str, ...]: ...

    @property
    def concurrency(self) -> int:
        """How many ``predict`` calls it serves at once; the app's admission gate lets that
        many through and queues the rest (``serve.max_queue``)."""

    async def start(self) -> None:
        """Open models or clients; raises ``ModelError`` when the server cannot serve at all."""

    async def close(self) -> None: ...

    async def readiness(self) -> Readiness: ...

    async def model_version(self) -> str | None: ...

    async def predict(self, data: bytes, *, pipeline: str, top_k: int,
                      request_id: str | None = None) -> ops.Prediction: ...
