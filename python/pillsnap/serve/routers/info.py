"""Model/code version and Prometheus metrics (keyed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from pillsnap import __version__
from pillsnap.serve.deps import ApiKey, BackendDep, MetricsDep
from pillsnap.serve.metrics import CONTENT_TYPE
from pillsnap.serve.schemas import Version, error_responses

router = APIRouter(tags=["info"], dependencies=[ApiKey], responses=error_responses(401, 403))


@router.get("/version", response_model=Version)
async def version(backend: BackendDep) -> Version:
    """The code version and the model version the backend serves (null while unreachable)."""
    return Version(code_version=__version__, model_version=await backend.model_version(),
                   backend=backend.name, pipelines=list(backend.pipelines))


# response_class Response (no media type of its own): the 200 is text, declared here, and
# the router's 401/403 stay JSON, as sent (a PlainTextResponse would declare them as text)
@router.get("/metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition format",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(registry: MetricsDep) -> Response:
    """Prometheus text format: requests, latency per route and per stage, errors, in-flight."""
    return Response(registry.render(), media_type=CONTENT_TYPE)
