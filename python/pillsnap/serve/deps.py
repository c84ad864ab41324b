"""FastAPI dependencies, as the named aliases the routers annotate their parameters with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security

from pillsnap.serve.admission import AdmissionGate
from pillsnap.serve.backends.base import Backend
from pillsnap.serve.metrics import Metrics
from pillsnap.serve.security import api_key_header, require_key
from pillsnap.serve.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_backend(request: Request) -> Backend:
    return request.app.state.backend


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_gate(request: Request) -> AdmissionGate:
    return request.app.state.gate


def get_request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "")


SettingsDep = Annotated[Settings, Depends(get_settings)]
BackendDep = Annotated[Backend, Depends(get_backend)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
GateDep = Annotated[AdmissionGate, Depends(get_gate)]
RequestIdDep = Annotated[str, Depends(get_request_id)]


def api_key(request: Request, settings: SettingsDep,
            given: Annotated[str | None, Security(api_key_header)]) -> None:
    """Every keyed endpoint depends on this."""
    require_key(request, settings, given)


ApiKey = Depends(api_key)
