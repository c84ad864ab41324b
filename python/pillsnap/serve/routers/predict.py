"""POST /predict (one photo) and POST /batch (up to ``serve.max_batch_images``).

Both pass the app's admission gate (``serve/admission.py``) after reading the upload and
before the backend: a full queue is a 503 ``overloaded`` with ``Retry-After`` at once. A
/predict waits in the queue and for the model under one deadline, ``serve.request_timeout_s``.
A /batch is admitted once and holds one slot for all its photos, which it computes one after
another (one worker's worth of work at a time), so it is refused whole or served whole; its
wait for the slot is bounded by ``serve.request_timeout_s`` and then each photo by the
backend's own timeout, as before.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request

from pillsnap.contract import ops
from pillsnap.errors import CorruptImageError, ImageTooLargeError, UnsupportedImageError
from pillsnap.serve.backends.base import Backend
from pillsnap.serve.deps import (
    ApiKey,
    BackendDep,
    GateDep,
    MetricsDep,
    RequestIdDep,
    SettingsDep,
)
from pillsnap.serve.errors import ApiError, BackendTimeout, api_error
from pillsnap.serve.metrics import Metrics
from pillsnap.serve.schemas import BatchResponse, Pipeline, PredictResponse, error_responses
from pillsnap.serve.settings import Settings
from pillsnap.serve.uploads import Upload, read_uploads, request_body

router = APIRouter(tags=["predict"], dependencies=[ApiKey],
                   responses=error_responses(400, 401, 403, 413, 415, 422, 503))

PipelineQuery = Annotated[Pipeline | None, Query(
    description="single: one pill, the detector's best box (the whole photo when there is "
    "no detector or no box); combo: every pill the detector finds. Default: the server's "
    "pipeline.mode")]
TopKQuery = Annotated[int | None, Query(ge=1, le=50, description="candidates per pill "
                                        "(default serve.top_k)")]
_INPUT_ERRORS = (UnsupportedImageError, CorruptImageError, ImageTooLargeError)


@router.post("/predict", response_model=PredictResponse,
             openapi_extra=request_body("image", many=False))
async def predict(request: Request, *, settings: SettingsDep, backend: BackendDep,
                  gate: GateDep, metrics: MetricsDep, request_id: RequestIdDep,
                  pipeline: PipelineQuery = None, top_k: TopKQuery = None) -> dict[str, Any]:
    """Identify the pill(s) in one photo (multipart field ``image``: JPEG, PNG, WebP, BMP)."""
    start = time.perf_counter()
    chosen = _pipeline(pipeline, settings, backend)
    uploads, read_ms = await read_uploads(request, "image", max_files=1,
                                          max_bytes=settings.max_upload_bytes)
    limit = settings.request_timeout_s
    try:
        with anyio.fail_after(limit):
            queued = time.perf_counter()
            async with gate.slot():
                queue_ms = _ms_since(queued)
                answer, backend_ms = await _run(backend, uploads[0].data, chosen,
                                                top_k or settings.top_k, request_id)
    except TimeoutError:
        # This deadline starts before the backend's own (same length), so it usually fires
        # first: it says what the backend's would, and that the queue counted.
        raise BackendTimeout(f"the {backend.name} backend did not answer within {limit:g} s "
                             "(the wait for a free worker included); the server is overloaded "
                             "or the backend is down, try again shortly") from None
    result = _shaped(answer, backend_ms, settings, read_ms, start, queue_ms=queue_ms)
    metrics.observe_timing(chosen, result["timing_ms"])
    return {"request_id": request_id, **result}


@router.post("/batch", response_model=BatchResponse,
             openapi_extra=request_body("images", many=True))
async def batch(request: Request, *, settings: SettingsDep, backend: BackendDep,
                gate: GateDep, metrics: MetricsDep, request_id: RequestIdDep,
                pipeline: PipelineQuery = None, top_k: TopKQuery = None) -> dict[str, Any]:
    """Several photos (multipart field ``images``, repeated); one item per photo, in order.

    A bad photo fails its own item (with the status /predict would give), not the batch; a
    backend that cannot answer, or a full queue, fails the whole batch with 503.
    """
    start = time.perf_counter()
    chosen = _pipeline(pipeline, settings, backend)
    uploads, read_ms = await read_uploads(request, "images",
                                          max_files=settings.max_batch_images,
                                          max_bytes=settings.max_upload_bytes)
    queued = time.perf_counter()
    async with gate.slot(wait_s=settings.request_timeout_s):
        queue_ms = _ms_since(queued)
        items = await _items(uploads, backend, metrics, settings, pipeline=chosen,
                             top_k=top_k or settings.top_k, request_id=request_id)
    total = _ms_since(start)
    return {"request_id": request_id, "pipeline": chosen, "items": items,
            "timing_ms": {"read": read_ms, "queue": queue_ms, "total": total}}


async def _items(uploads: list[Upload], backend: Backend, metrics: Metrics,
                 settings: Settings, *, pipeline: str, top_k: int,
                 request_id: str) -> list[dict[str, Any]]:
    """The batch's items, computed one after another in the slot the batch holds."""
    items = []
    for index, upload in enumerate(uploads):
        item: dict[str, Any] = {"index": index, "filename": upload.filename}
        item_start = time.perf_counter()
        try:
            answer, backend_ms = await _run(backend, upload.data, pipeline, top_k, request_id)
        except _INPUT_ERRORS as exc:
            error = api_error(exc)
            assert error is not None
            metrics.errors.labels(error.kind).inc()
            item.update(status=error.status_code,
                        error={"kind": error.kind, "detail": str(error.detail)})
        else:
            prediction = _shaped(answer, backend_ms, settings, 0.0, item_start)
            metrics.observe_timing(pipeline, prediction["timing_ms"])
            item.update(status=200, prediction=prediction)
        items.append(item)
    return items


def _pipeline(asked: str | None, settings: Settings, backend: Backend) -> str:
    chosen = asked or settings.pipeline
    if chosen not in backend.pipelines:
        available = ", ".join(backend.pipelines) or "none (models not loaded)"
        raise ApiError(422, "invalid_request", f"pipeline={chosen} is not served here; "
                       f"available: {available}")
    return chosen


async def _run(backend: Backend, data: bytes, pipeline: str, top_k: int,
               request_id: str) -> tuple[ops.Prediction, float]:
    """The backend's answer and how long it took, in milliseconds."""
    started = time.perf_counter()
    answer = await backend.predict(data, pipeline=pipeline, top_k=top_k, request_id=request_id)
    return answer, _ms_since(started)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _shaped(answer: ops.Prediction, backend_ms: float, settings: Settings, read_ms: float,
            start: float, *, queue_ms: float | None = None) -> dict[str, Any]:
    """The backend's answer with the low-confidence flags and the proxy's own timings
    (``queue``: the wait for a free worker; a /batch item has none of its own)."""
    pills = []
    for pill in answer["pills"]:
        confidence = float(pill["top1"].get("confidence", 0.0))
        pills.append({**pill, "low_confidence": confidence < settings.low_confidence})
    stages = {k: v for k, v in answer["timing_ms"].items() if k != "total"}
    queue = {} if queue_ms is None else {"queue": queue_ms}
    timing = {"read": read_ms, **queue, **stages, "backend": backend_ms,
              "total": _ms_since(start)}
    return {"pipeline": answer["pipeline"], "model_version": answer["model_version"],
            "image": answer["image"], "pills": pills, "reason": answer["reason"],
            "recommend_combo": answer["recommend_combo"],
            "low_confidence": any(p["low_confidence"] for p in pills),
            "unknown": any(p.get("unknown", False) for p in pills), "timing_ms": timing}
