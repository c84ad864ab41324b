"""The API's minimum, over real HTTP: health, predict with the EDI-code schema, 401 and 403.

Every test runs twice: the embedded backend (ONNX Runtime in the server process, over the
tiny export of the test session) and the Triton backend, in front of the real tritonserver
(bundled binary, CPU configs) serving a repository of that export whose detector finds 6
pills per photo.
"""

from __future__ import annotations

import httpx
import pytest

from api_helpers import KEY, Photos, ServerProcess, edi_schema_ok

pytestmark = pytest.mark.slow


def test_health_is_public_and_ok(any_api_server: ServerProcess) -> None:
    response = httpx.get(f"{any_api_server.url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("pipeline", ["single", "combo"])
def test_predict_returns_candidates_with_edi_codes(any_api_server: ServerProcess,
                                                   pill_photos: Photos, pipeline: str) -> None:
    photo = pill_photos[pipeline]
    response = httpx.post(f"{any_api_server.url}/predict",
                          params={"pipeline": pipeline, "top_k": 3}, headers={"X-API-Key": KEY},
                          files={"image": (photo.name, photo.read_bytes(), "image/png")},
                          timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pipeline"] == pipeline
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["model_version"] and isinstance(body["recommend_combo"], bool)
    assert body["timing_ms"]["total"] >= body["timing_ms"]["backend"] > 0
    if pipeline == "single":  # always one answer: the best detected box, else the whole photo
        assert len(body["pills"]) == 1
        assert (body["pills"][0]["bbox"] is None) == (body["reason"] is not None)
    for pill in body["pills"]:
        assert 1 <= len(pill["candidates"]) <= 3 and pill["top1"] == pill["candidates"][0]
        assert all(edi_schema_ok(c) for c in pill["candidates"])
        assert isinstance(pill["low_confidence"], bool)
        if pipeline == "combo":
            assert pill["bbox"] is not None
    if not body["pills"]:
        assert body["reason"]


def test_predict_without_key_is_401(any_api_server: ServerProcess, pill_photos: Photos) -> None:
    photo = pill_photos["single"].read_bytes()
    response = httpx.post(f"{any_api_server.url}/predict",
                          files={"image": ("p.png", photo, "image/png")})
    assert response.status_code == 401
    assert response.json()["kind"] == "unauthorized"


def test_predict_with_wrong_key_is_403(any_api_server: ServerProcess, pill_photos: Photos) -> None:
    photo = pill_photos["single"].read_bytes()
    response = httpx.post(f"{any_api_server.url}/predict",
                          headers={"X-API-Key": KEY[:-1] + "X"},
                          files={"image": ("p.png", photo, "image/png")})
    assert response.status_code == 403
    assert response.json()["kind"] == "forbidden"
