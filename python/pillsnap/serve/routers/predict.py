"""POST /predict (one photo) and POST /batch (up to ``serve.max_batch_images``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from pillsnap.contract import ops
from pillsnap.errors import CorruptImageError, ImageTooLargeError, UnsupportedImageError
from pillsnap.serve.backends.base import Backend
from pillsnap.serve.deps import ApiKey, BackendDep, MetricsDep, RequestIdDep, SettingsDep
from pillsnap.serve.errors import ApiError, api_error
from pillsnap.serve.schemas import BatchResponse, Pipeline, PredictResponse, error_responses
from pillsnap.serve.settings import Settings
from pillsnap.serve.uploads import read_uploads, request_body

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
                  metrics: MetricsDep, request_id: RequestIdDep,
                  pipeline: PipelineQuery = None, top_k: TopKQuery = None) -> dict[str, Any]:
    """Identify the pill(s) in one photo (multipart field ``image``: JPEG, PNG, WebP, BMP)."""
    start = time.perf_counter()
    chosen = _pipeline(pipeline, settings, backend)
    uploads, read_ms = await read_uploads(request, "image", max_files=1,
                                          max_bytes=settings.max_upload_bytes)
    answer, backend_ms = await _run(backend, uploads[0].data, chosen,
                                    top_k or settings.top_k, request_id)
    result = _shaped(answer, backend_ms, settings, read_ms, start)
    metrics.observe_timing(chosen, result["timing_ms"])
    return {"request_id": request_id, **result}


@router.post("/batch", response_model=BatchResponse,
             openapi_extra=request_body("images", many=True))
async def batch(request: Request, *, settings: SettingsDep, backend: BackendDep,
                metrics: MetricsDep, request_id: RequestIdDep,
                pipeline: PipelineQuery = None, top_k: TopKQuery = None) -> dict[str, Any]:
    """Several photos (multipart field ``images``, repeated); one item per photo, in order.

    A bad photo fails its own item (with the status /predict would give), not the batch; a
    backend that cannot answer fails the whole batch with 503.
    """
    start = time.perf_counter()
    chosen = _pipeline(pipeline, settings, backend)
    uploads, read_ms = await read_uploads(request, "images",
                                          max_files=settings.max_batch_images,
                                          max_bytes=settings.max_upload_bytes)
    items = []
    for index, upload in enumerate(uploads):
        item: dict[str, Any] = {"index": index, "filename": upload.filename}
        item_start = time.perf_counter()
        try:
            answer, backend_ms = await _run(backend, upload.data, chosen,
                                            top_k or settings.top_k, request_id)
        except _INPUT_ERRORS as exc:
            error = api_error(exc)
            assert error is not None
            metrics.errors.labels(error.kind).inc()
            item.update(status=error.status_code,
                        error={"kind": error.kind, "detail": str(error.detail)})
        else:
            prediction = _shaped(answer, backend_ms, settings, 0.0, item_start)
            metrics.observe_timing(chosen, prediction["timing_ms"])
            item.update(status=200, prediction=prediction)
        items.append(item)
    total = round((time.perf_counter() - start) * 1000, 3)
    return {"request_id": request_id, "pipeline": chosen, "items": items,
            "timing_ms": {"read": read_ms, "total": total}}


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
    return answer, round((time.perf_counter() - started) * 1000, 3)


def _shaped(answer: ops.Prediction, backend_ms: float, settings: Settings, read_ms: float,
            start: float) -> dict[str, Any]:
    """The backend's answer with the low-confidence flags and the proxy's own timings."""
    pills = []
    for pill in answer["pills"]:
        confidence = float(pill["top1"].get("confidence", 0.0))
        pills.append({**pill, "low_confidence": confidence < settings.low_confidence})
    stages = {k: v for k, v in answer["timing_ms"].items() if k != "total"}
    timing = {"read": read_ms, **stages, "backend": backend_ms,
              "total": round((time.perf_counter() - start) * 1000, 3)}
    return {"pipeline": answer["pipeline"], "model_version": answer["model_version"],
            "image": answer["image"], "pills": pills, "reason": answer["reason"],
            "recommend_combo": answer["recommend_combo"],
            "low_confidence": any(p["low_confidence"] for p in pills),
            "unknown": any(p.get("unknown", False) for p in pills), "timing_ms": timing}
