"""Send every sample through a served pipeline and keep what came back.

    runner = EmbeddedRunner(Path("artifacts/export"))          # or TritonRunner("127.0.0.1:8100")
    served = collect(samples, runner, top_k=5)

Both runners call what ``/predict`` calls: the embedded backend's ``OnnxPipeline.predict``
in this process, or the Triton backend's client against the ``pill_single``/``pill_combo``
ensembles. Single-pill photos go through ``single``, combination photos through ``combo``.
A photo that fails (unreadable, refused, a backend error) is recorded with its error and the
run goes on. The embedded runner also keeps, per pill, every open-set score computed from
the same logits, so the report can compare them; Triton's answer carries the served one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from pillsnap.contract import decide
from pillsnap.errors import PillsnapError
from pillsnap.eval.samples import Sample

logger = logging.getLogger(__name__)


@dataclass
class Served:
    """One photo's answer, as the evaluation reads it."""

    sample: Sample
    pills: list[dict[str, Any]] = field(default_factory=list)  # the answer's pills
    reason: str | None = None
    timing_ms: dict[str, float] = field(default_factory=dict)  # the backend's own stages
    wall_ms: float = 0.0  # the call as the caller saw it: the latency figure
    error: str | None = None  # why the photo has no answer
    scores: list[dict[str, float]] | None = None  # per pill, every open-set score


class Runner(Protocol):
    name: str

    def predict(self, data: bytes, pipeline: str,
                top_k: int) -> tuple[dict[str, Any], list[dict[str, float]] | None]:
        """The answer and, where the runner sees logits, every open-set score per pill."""

    def close(self) -> None: ...


class EmbeddedRunner:
    """The embedded backend's pipeline, in this process (``serve.threads`` ONNX threads)."""

    name = "embedded"

    def __init__(self, export: Path, *, threads: int = 0, max_pixels: int | None = None) -> None:
        from pillsnap.infer.pipeline import OnnxPipeline

        self.pipe = OnnxPipeline.open(export, threads=threads, max_pixels=max_pixels)

    @property
    def k_codes(self) -> tuple[str, ...]:
        return self.pipe.bundle.k_codes

    def predict(self, data: bytes, pipeline: str,
                top_k: int) -> tuple[dict[str, Any], list[dict[str, float]] | None]:
        answer = self.pipe.predict(data, pipeline=pipeline, top_k=top_k, with_outputs=True)
        logits, features = answer.pop("logits"), answer.pop("features")
        by_kind = decide.scores(logits, features, recipe=self.pipe.recipe,
                                gallery=self.pipe.gallery)
        scores = [{kind: float(values[i]) for kind, values in by_kind.items()}
                  for i in range(len(logits))]
        return answer, scores

    def close(self) -> None:
        return None


class TritonRunner:
    """The Triton backend's client (the API's), one event loop for the whole run."""

    name = "triton"

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        from pillsnap.serve.backends.triton import TritonBackend

        self.loop = asyncio.new_event_loop()
        self.backend = TritonBackend(url, timeout_s=timeout_s, connections=4)
        self.loop.run_until_complete(self.backend.start())
        ready = self.loop.run_until_complete(self.backend.readiness())
        if not ready.ready:
            self.close()
            raise PillsnapError(f"Triton at {url} is not ready: {ready.detail}")

    def predict(self, data: bytes, pipeline: str,
                top_k: int) -> tuple[dict[str, Any], list[dict[str, float]] | None]:
        return self.loop.run_until_complete(
            self.backend.predict(data, pipeline=pipeline, top_k=top_k)), None

    def close(self) -> None:
        self.loop.run_until_complete(self.backend.close())
        self.loop.close()


def collect(samples: list[Sample], runner: Runner, *, top_k: int = 5,
            progress: bool | None = None) -> list[Served]:
    """Every sample through ``runner``, in order; failures recorded, never raised."""
    out: list[Served] = []
    failures = 0
    # progress None: a bar on a terminal only (tqdm's rule), never in a log file
    bar = tqdm(samples, desc=f"eval ({runner.name})", unit="photo",
               disable=None if progress is None else not progress)
    for sample in bar:
        pipeline = "combo" if sample.kind == "combo" else "single"
        started = time.perf_counter()
        try:
            answer, scores = runner.predict(sample.path.read_bytes(), pipeline, top_k)
            served = Served(sample, list(answer["pills"]), answer.get("reason"),
                            dict(answer.get("timing_ms", {})), scores=scores)
        except (OSError, PillsnapError) as exc:
            failures += 1
            served = Served(sample, error=f"{type(exc).__name__}: {exc}")
            logger.warning("eval: %s failed: %s", sample.name, served.error)
        served.wall_ms = round((time.perf_counter() - started) * 1000, 3)
        out.append(served)
    if failures:
        logger.warning("eval: %d of %d photos failed (listed in the report)", failures,
                       len(samples))
    return out
