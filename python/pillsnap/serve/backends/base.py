"""What the routers need from an inference backend, whichever runs the models.

An answer is the pipeline's JSON (``OnnxPipeline.predict``'s shape): ``pipeline``,
``model_version``, ``image``, ``pills``, ``reason``, ``recommend_combo`` and ``timing_ms``
(the backend's own stages). Bad images raise ``pillsnap.errors`` types; a backend that
cannot answer raises ``BackendUnavailable`` / ``BackendTimeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str


class Backend(Protocol):
    name: str

    @property
    def pipelines(self) -> tuple[str, ...]: ...

    async def start(self) -> None:
        """Open models or clients; raises ``ModelError`` when the server cannot serve at all."""

    async def close(self) -> None: ...

    async def readiness(self) -> Readiness: ...

    async def model_version(self) -> str | None: ...

    async def predict(self, data: bytes, *, pipeline: str, top_k: int,
                      request_id: str | None = None) -> dict[str, Any]: ...


def normalise(answer: dict[str, Any], pipeline: str, model_version: str | None) -> dict[str, Any]:
    """The fields every backend returns, with defaults for ones an older model lacks."""
    return {
        "pipeline": answer.get("pipeline", pipeline),
        "model_version": answer.get("model_version") or model_version or "unknown",
        "image": answer.get("image"),
        "pills": list(answer.get("pills", [])),
        "reason": answer.get("reason"),
        "recommend_combo": bool(answer.get("recommend_combo", False)),
        "timing_ms": dict(answer.get("timing_ms", {})),
    }
