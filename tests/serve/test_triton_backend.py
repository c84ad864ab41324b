"""The Triton backend without tritonserver: a closed port, then a KServe v2 stand-in.

Backend down -> /ready and /predict answer 503 with a clear message while /health stays 200;
when something serves the ensembles on that port, the same proxy recovers by itself and
answers as the embedded backend does for the same photo.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_triton import fake_triton

from api_helpers import AUTH, Photos, api_settings
from pillsnap.infer.pipeline import OnnxPipeline
from pillsnap.serve.app import create_app
from pillsnap.serve.live import LiveServer

pytestmark = pytest.mark.slow


def _closed_port() -> int:
    with socket.socket() as sock:  # bound then released: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def triton_proxy() -> Iterator[tuple[LiveServer, int]]:
    port = _closed_port()
    settings = api_settings(None, backend="triton", triton_url=f"127.0.0.1:{port}",
                            request_timeout_s=3.0)
    with LiveServer(create_app(settings)) as proxy:
        yield proxy, port


def _predict(url: str, photo: bytes, pipeline: str = "single") -> httpx.Response:
    return httpx.post(f"{url}/predict", params={"pipeline": pipeline, "top_k": 3}, headers=AUTH,
                      files={"image": ("p.png", photo, "image/png")}, timeout=30)


def test_backend_down_is_503_then_recovers(triton_proxy: tuple[LiveServer, int],
                                           exported: Path, pill_photos: Photos) -> None:
    proxy, port = triton_proxy
    photo = pill_photos["single"].read_bytes()
    ready = httpx.get(f"{proxy.url}/ready")
    assert ready.status_code == 503 and not ready.json()["ready"]
    assert f"127.0.0.1:{port}" in ready.json()["detail"]
    for _ in range(2):
        down = _predict(proxy.url, photo)
        assert down.status_code == 503, down.text
        assert down.json()["kind"] == "backend_unavailable"
        assert "cannot reach Triton" in down.json()["detail"]
    assert httpx.get(f"{proxy.url}/health").status_code == 200
    assert httpx.get(f"{proxy.url}/version", headers=AUTH).json()["model_version"] is None

    pipe = OnnxPipeline.open(exported)
    with LiveServer(fake_triton(pipe), port=port):
        assert httpx.get(f"{proxy.url}/ready").status_code == 200
        for pipeline in ("single", "combo"):
            up = _predict(proxy.url, pill_photos[pipeline].read_bytes(), pipeline)
            assert up.status_code == 200, up.text
            body = up.json()
            direct = pipe.predict(pill_photos[pipeline].read_bytes(), pipeline=pipeline,
                                  top_k=3)
            assert body["pills"] == [{**p, "bbox": p.get("bbox"),
                                      "det_confidence": p.get("det_confidence"),
                                      "low_confidence": p["top1"]["confidence"] < 0.5}
                                     for p in direct["pills"]]
            assert body["model_version"] == pipe.bundle.model_version
            assert body["timing_ms"]["triton"] > 0
        bad = _predict(proxy.url, photo[: len(photo) // 2])
        assert bad.status_code == 400 and bad.json()["kind"] == "corrupt_image"
        bad = _predict(proxy.url, b"%PDF-1.7")
        assert bad.status_code == 415 and bad.json()["kind"] == "unsupported_image"
    assert _predict(proxy.url, photo).status_code == 503  # down again: 503 again


def test_triton_timeout_is_503(exported: Path, pill_photos: Photos) -> None:
    listener = socket.socket()  # accepts connections, never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        port = listener.getsockname()[1]
        settings = api_settings(None, backend="triton", triton_url=f"127.0.0.1:{port}",
                                request_timeout_s=0.5)
        with LiveServer(create_app(settings)) as proxy:
            response = _predict(proxy.url, pill_photos["single"].read_bytes())
            assert response.status_code == 503
            assert response.json()["kind"] == "backend_timeout"
            assert "did not answer within 0.5 s" in response.json()["detail"]
            assert httpx.get(f"{proxy.url}/health").status_code == 200
    finally:
        listener.close()
