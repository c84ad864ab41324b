"""Auth details, CORS, request IDs, metrics and the web page, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from api_helpers import API_KEYS, AUTH, Photos, ServerProcess, api_settings
from pillsnap.serve.app import create_app
from pillsnap.serve.live import LiveServer
from pillsnap.serve.metrics import Metrics
from pillsnap.serve.security import key_matches

pytestmark = pytest.mark.slow


@pytest.fixture
def client(api_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, timeout=30) as c:
        yield c


def test_key_compare_accepts_every_rotation_key_only() -> None:
    assert key_matches(API_KEYS[1], list(API_KEYS))
    assert not key_matches(API_KEYS[1][:-1], list(API_KEYS))
    assert not key_matches("", list(API_KEYS)) and not key_matches("é" * 3, list(API_KEYS))


def test_old_key_still_works_and_keyed_endpoints_refuse_strangers(client: httpx.Client) -> None:
    assert client.get("/version", headers={"X-API-Key": API_KEYS[1]}).status_code == 200
    for path in ("/version", "/metrics"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-API-Key": "x" * 20}).status_code == 403
    for path in ("/predict", "/batch"):  # the key is checked before the body is parsed
        assert client.post(path, content=b"junk").status_code == 401


def test_health_can_require_the_key() -> None:
    settings = api_settings(None, backend="triton", triton_url="127.0.0.1:1",
                            health_public=False)
    with LiveServer(create_app(settings)) as server:
        assert httpx.get(f"{server.url}/health").status_code == 401
        assert httpx.get(f"{server.url}/health", headers=AUTH).status_code == 200
        assert httpx.get(f"{server.url}/ready", headers=AUTH).status_code == 503
        keyed = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    public = create_app(api_settings(None, backend="triton", triton_url="127.0.0.1:1"))
    for path in ("/health", "/ready"):  # the schema declares the key where it is asked for
        assert keyed[path]["get"]["security"] and "401" in keyed[path]["get"]["responses"]
        operation = public.openapi()["paths"][path]["get"]
        assert "security" not in operation and "401" not in operation["responses"]


def test_cors_allows_the_whitelist_only(client: httpx.Client) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "x-api-key"}
    ok = client.options("/predict", headers={"Origin": "https://pillsnap.co.kr", **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://pillsnap.co.kr"
    bad = client.options("/predict", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in bad.headers
    simple = client.get("/health", headers={"Origin": "http://localhost:3000"})
    assert simple.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


def test_request_ids(client: httpx.Client, pill_photos: Photos) -> None:
    mine = client.get("/health", headers={"X-Request-ID": "trace-42.a"})
    assert mine.headers["x-request-id"] == "trace-42.a"
    odd = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])
    photo = pill_photos["single"].read_bytes()
    response = client.post("/predict", headers={**AUTH, "X-Request-ID": "req-7"},
                           files={"image": ("p.png", photo)})
    assert response.json()["request_id"] == "req-7"


def test_metrics_count_requests_stages_errors(client: httpx.Client,
                                              pill_photos: Photos) -> None:
    client.post("/predict", headers=AUTH, files={"image": ("p.png", b"not an image")})
    client.post("/predict", headers=AUTH,
                files={"image": ("p.png", pill_photos["single"].read_bytes())})
    text = client.get("/metrics", headers=AUTH).text
    assert 'pillsnap_errors_total{kind="unsupported_image"}' in text
    assert re.search(r'pillsnap_http_requests_total\{method="POST",route="/predict",'
                     r'status="200"\} [1-9]', text)
    stage_count = 'pillsnap_stage_duration_seconds_count{pipeline="single",stage="'
    for stage in ("read", "decode", "classify", "backend", "total"):
        assert f'{stage_count}{stage}"}}' in text
    assert re.search(r"^pillsnap_requests_in_flight 1\.0$", text, re.M)  # this very request
    buckets = [float(n) for n in re.findall(
        r'^pillsnap_http_request_duration_seconds_bucket\{le="[^"]+",route="/predict"\} (\S+)$',
        text, re.M)]
    assert buckets == sorted(buckets) and buckets[-1] >= 2


def test_metric_exposition_format() -> None:
    metrics = Metrics()
    metrics.stages.labels("combo", "detect").observe(0.003)
    metrics.errors.labels('we"ird\nkind').inc()
    text = metrics.render()
    assert "# TYPE pillsnap_stage_duration_seconds histogram" in text
    for le, count in (("0.0025", 0), ("0.005", 1), ("+Inf", 1)):
        assert (f'pillsnap_stage_duration_seconds_bucket{{le="{le}",pipeline="combo",'
                f'stage="detect"}} {count}.0') in text
    assert 'pillsnap_errors_total{kind="we\\"ird\\nkind"} 1.0' in text
    assert text.endswith("\n")


def test_web_page_is_served_with_a_strict_policy(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/app.js"' in page.text and API_KEYS[0] not in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "X-API-Key" in script.text
    assert client.get("/static/style.css").status_code == 200
