"""The FastAPI application factory.

    app = create_app(load_settings())        # what python -m pillsnap.serve api runs

Middleware, outermost first: Observe (request ID, metrics, access log), CORS (whitelist),
BodyLimit (413 before reading an oversized body). The backend opens in the lifespan, so a
server whose models cannot load does not start. One admission gate per app (that is, per
backend) bounds the requests computing and waiting (``serve/admission.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from pillsnap import __version__
from pillsnap.errors import PillsnapError
from pillsnap.serve.admission import AdmissionGate
from pillsnap.serve.backends import Backend, make_backend
from pillsnap.serve.deps import ApiKey
from pillsnap.serve.errors import install_error_handlers
from pillsnap.serve.metrics import Metrics
from pillsnap.serve.middleware import BodyLimit, Observe
from pillsnap.serve.routers import info, predict, probes, web
from pillsnap.serve.schemas import error_responses
from pillsnap.serve.security import HEADER, check_startup
from pillsnap.serve.settings import Settings
from pillsnap.serve.uploads import body_limit

logger = logging.getLogger(__name__)

SMALL_BODY = 64 * 1024  # every route but the uploads


def create_app(settings: Settings, backend: Backend | None = None) -> FastAPI:
    """The app for ``settings``; ``backend`` defaults to the one the settings name."""
    check_startup(settings)
    backend = backend if backend is not None else make_backend(settings)
    metrics = Metrics()
    gate = AdmissionGate(backend.concurrency, settings.max_queue,
                         max_retry_after_s=max(1, math.ceil(settings.request_timeout_s)))
    metrics.watch(gate)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await backend.start()
        except PillsnapError as exc:
            logger.error("cannot start the %s backend: %s", backend.name, exc)
            raise
        state = await backend.readiness()
        logger.info("backend %s (%s); pipelines %s; %d API key(s); CORS %s", backend.name,
                    state.detail, ",".join(backend.pipelines) or "-", len(settings.api_keys),
                    ",".join(settings.cors_allow_origins) or "-")
        try:
            yield
        finally:
            await backend.close()

    app = FastAPI(title="PillSnap API", version=__version__, lifespan=lifespan,
                  description="Identify Korean oral drugs from a photo. Send the API key in "
                  f"`{HEADER}`.")
    app.state.settings, app.state.backend, app.state.metrics = settings, backend, metrics
    app.state.gate = gate
    install_error_handlers(app)
    # public probes declare no security, so the schema says what the server does
    keyed = {} if settings.health_public else {"dependencies": [ApiKey],
                                               "responses": error_responses(401, 403)}
    app.include_router(probes.router, **keyed)
    for router in (info.router, predict.router, web.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")

    limits = {"/predict": body_limit(settings.max_upload_bytes, 1),
              "/batch": body_limit(settings.max_upload_bytes, settings.max_batch_images)}
    app.add_middleware(BodyLimit, limit_for=lambda path: limits.get(path, SMALL_BODY),
                       metrics=metrics)
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_allow_origins,
                       allow_methods=["GET", "POST"],
                       allow_headers=[HEADER, "X-Request-ID", "Content-Type"],
                       expose_headers=["X-Request-ID"], max_age=600)
    app.add_middleware(Observe, metrics=metrics)
    return app
