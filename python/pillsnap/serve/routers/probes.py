"""Liveness and readiness probes.

Open by default (load balancers send no key); with ``serve.health_public: false`` the app
includes this router behind the API key, and the schema says so (``app.create_app``).
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pillsnap.serve.backends.base import Readiness
from pillsnap.serve.deps import BackendDep, SettingsDep
from pillsnap.serve.schemas import Health, Ready

router = APIRouter(tags=["probes"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is up and answering (says nothing about the models)."""
    return Health()


@router.get("/ready", response_model=Ready,
            responses={503: {"model": Ready}})
async def ready(backend: BackendDep, settings: SettingsDep) -> JSONResponse:
    """The backend can predict now: models loaded (embedded) or both ensembles ready (Triton).

    Bounded by ``serve.ready_timeout_s`` (1 s): a hung backend is a quick 503 here, while
    ``/predict`` keeps ``serve.request_timeout_s``."""
    limit = settings.ready_timeout_s
    state = Readiness(False, f"the {backend.name} backend did not answer within {limit:g} s")
    with anyio.move_on_after(limit):
        state = await backend.readiness()
    body = Ready(ready=state.ready, backend=backend.name, detail=state.detail,
                 pipelines=list(backend.pipelines))
    return JSONResponse(body.model_dump(), status_code=200 if state.ready else 503)
