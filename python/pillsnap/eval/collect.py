"""Send every sample through a served pipeline and keep what came back.

    runner = EmbeddedRunner(Path("artifacts/export"))          # or TritonRunner("127.0.0.1:8100")
    served = collect(samples, runner, top_k=5)

Both runners call what ``/predict`` calls: the embedded backend's ``OnnxPipeline.predict``
in this process, or the Triton backend's client against the ``pill_single``/``pill_combo``
ensembles. Single-pill photos go through ``single``, combination photos through ``combo``.
A photo that fails (unreadable, refused, a backend error) is recorded with its error and the
run goes on. The embedded runner also keeps, per pill, every open-set score computed from
the same logits, so the report can compare them (Triton's answer carries the served one),
and classifies each labelled box too (``framing``): the served score on the labelled crop,
the IoU of the detector's box to the label, and how far that moved the features.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from pillsnap.contract import decide, ops
from pillsnap.contract.photo import open_photo
from pillsnap.errors import PillsnapError
from pillsnap.eval.samples import Sample
from pillsnap.export.map50 import match_pills

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
    # per labelled pill, its own crop's verdict and how the served one differs (embedded)
    framing: list[dict[str, Any] | None] | None = None


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
        self._features: np.ndarray | None = None

    @property
    def k_codes(self) -> tuple[str, ...]:
        return self.pipe.bundle.k_codes

    def predict(self, data: bytes, pipeline: str,
                top_k: int) -> tuple[dict[str, Any], list[dict[str, float]] | None]:
        answer = self.pipe.predict(data, pipeline=pipeline, top_k=top_k, with_outputs=True)
        logits, features = answer.pop("logits"), answer.pop("features")
        self._features = features  # for framing(), called after the timed answer
        by_kind = decide.scores(logits, features, recipe=self.pipe.recipe,
                                gallery=self.pipe.gallery)
        scores = [{kind: float(values[i]) for kind, values in by_kind.items()}
                  for i in range(len(logits))]
        return answer, scores

    def framing(self, data: bytes, sample: Sample,
                answer: dict[str, Any]) -> list[dict[str, Any] | None]:
        """Per labelled pill of the last ``predict``'s photo: the verdict on its labelled
        box's crop, the IoU of the served box that matched it, and the cosine between the
        two crops' features."""
        pipe, rule, features = self.pipe, self.pipe.recipe.open_set, self._features
        if rule is None or features is None or pipe.recipe.crop.region != "pill":
            return [None] * len(sample.pills)
        photo = open_photo(data, max_pixels=pipe.max_pixels)
        truth = np.array([p.box for p in sample.pills], dtype=np.float32)
        crop = pipe.recipe.crop
        crops = photo.crops(ops.box_regions(truth, photo.width, photo.height, crop.margin),
                            size=crop.size, short_side=crop.short_side)
        logits, labelled = pipe.classify(crops)
        found = decide.identify(logits, labelled, recipe=pipe.recipe, gallery=pipe.gallery,
                                drugs={}, k=1)
        served = answer["pills"]
        boxes = np.array([p.get("bbox", [0, 0, 0, 0]) for p in served], dtype=np.float32)
        if sample.kind == "combo":
            match = match_pills(boxes, np.array([p["det_confidence"] for p in served]), truth)
        else:
            match = np.zeros(min(len(served), 1), dtype=np.int64)
        out: list[dict[str, Any] | None] = []
        for i, pill in enumerate(found):
            row: dict[str, Any] = {"score": pill["open_set_score"],
                                   "top1": pill["top1"]["k_code"], "iou": None, "cosine": None}
            hit = np.flatnonzero(match == i)
            if hit.size and labelled is not None:
                j = int(hit[0])
                if "bbox" in served[j]:
                    row["iou"] = float(ops.box_iou(boxes[j], truth[i])[0, 0])
                a, b = features[j].astype(np.float64), labelled[i].astype(np.float64)
                row["cosine"] = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
            out.append(row)
        return out

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
            data = sample.path.read_bytes()
            answer, scores = runner.predict(data, pipeline, top_k)
            served = Served(sample, list(answer["pills"]), answer.get("reason"),
                            dict(answer.get("timing_ms", {})), scores=scores)
        except (OSError, PillsnapError) as exc:
            failures += 1
            served = Served(sample, error=f"{type(exc).__name__}: {exc}")
            logger.warning("eval: %s failed: %s", sample.name, served.error)
        served.wall_ms = round((time.perf_counter() - started) * 1000, 3)
        framing = getattr(runner, "framing", None)
        if framing is not None and served.error is None:  # outside the timed answer
            served.framing = framing(data, sample, answer)
        out.append(served)
    if failures:
        logger.warning("eval: %d of %d photos failed (listed in the report)", failures,
                       len(samples))
    return out
