"""The Triton backend when Triton is down, comes up, and goes away again: a real tritonserver.

Backend down (nothing listens on its port) -> /ready and /predict answer 503 with a clear
message while /health stays 200; when the real tritonserver starts on exactly that port, the
same proxy recovers by itself and answers as the embedded backend does for the same photo;
when Triton is stopped (SIGSTOP), /ready is 503 within a second; when Triton stops, 503
again. Triton that accepts connections but never answers -> 503
``backend_timeout`` (a plain listening socket: real, and no server can be made that slow).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from api_helpers import AUTH, Photos, api_settings
from pillsnap.serve.app import create_app
from pillsnap.serve.live import LiveServer
from pillsnap.serve.triton_server import Ports, TritonLaunch, TritonServer, free_ports

pytestmark = pytest.mark.slow

SAME = ("pipeline", "model_version", "image", "pills", "reason", "recommend_combo")


def _closed_port() -> int:
    with socket.socket() as sock:  # bound then released: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def triton_proxy() -> Iterator[tuple[LiveServer, int]]:
    port = _closed_port()
    settings = api_settings(None, backend="triton", triton_url=f"127.0.0.1:{port}",
                            request_timeout_s=5.0)
    with LiveServer(create_app(settings)) as proxy:
        yield proxy, port


def _predict(url: str, photo: bytes, pipeline: str = "single") -> httpx.Response:
    return httpx.post(f"{url}/predict", params={"pipeline": pipeline, "top_k": 3}, headers=AUTH,
                      files={"image": ("p.png", photo, "image/png")}, timeout=30)


def _answer(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    return {k: body[k] for k in SAME}


def _too_many_pixels() -> bytes:
    out = io.BytesIO()  # 120,000 pixels: under the proxy's 2 MP, over the repository's 100,000
    Image.new("RGB", (400, 300), (200, 180, 160)).save(out, "PNG")
    return out.getvalue()


def test_backend_down_is_503_then_recovers(triton_proxy: tuple[LiveServer, int],
                                           many_repo: Path, many_export: Path,
                                           pill_photos: Photos) -> None:
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

    # the real server on exactly the port the proxy was given; exit_timeout_s=1: the proxy
    # keeps its connections open, and Triton waits that long for them on stop
    spare = free_ports()
    launch = TritonLaunch(many_repo, Ports(port, spare.grpc, spare.metrics),
                          startup_timeout_s=90.0, exit_timeout_s=1)
    with TritonServer(launch) as triton, \
            LiveServer(create_app(api_settings(many_export))) as embedded:
        assert httpx.get(f"{proxy.url}/ready").status_code == 200
        _hung_triton_is_a_quick_503(proxy.url, triton)
        for pipeline in ("single", "combo"):
            data = pill_photos[pipeline].read_bytes()
            up = _predict(proxy.url, data, pipeline)
            assert up.json()["timing_ms"]["triton"] > 0, up.text
            ours, reference = _answer(up), _answer(_predict(embedded.url, data, pipeline))
            assert ours == reference  # pills (top-1, candidates, bbox), recommend_combo, ...
            assert len(ours["pills"]) == (1 if pipeline == "single" else 6)
            assert all(p["bbox"] is not None for p in ours["pills"])
            assert ours["recommend_combo"] is (pipeline == "single")
        assert httpx.get(f"{proxy.url}/version", headers=AUTH).json()["model_version"] == \
            ours["model_version"]
        for data, status, kind in [(photo[: len(photo) // 2], 400, "corrupt_image"),
                                   (b"%PDF-1.7", 415, "unsupported_image"),
                                   (_too_many_pixels(), 413, "too_large")]:
            bad = _predict(proxy.url, data)
            assert (bad.status_code, bad.json()["kind"]) == (status, kind), bad.text
    down = _predict(proxy.url, photo)  # Triton gone again: 503 again, the proxy still up
    assert down.status_code == 503 and down.json()["kind"] == "backend_unavailable", down.text
    assert httpx.get(f"{proxy.url}/ready").status_code == 503
    assert httpx.get(f"{proxy.url}/health").status_code == 200


def _hung_triton_is_a_quick_503(url: str, triton: TritonServer) -> None:
    """A stopped tritonserver (SIGSTOP: the port still accepts, nothing answers): /ready
    says 503 within serve.ready_timeout_s (1 s), not the 5 s predict timeout, and 200 again
    once Triton runs on."""
    assert triton.child is not None
    os.kill(triton.child.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        hung = httpx.get(f"{url}/ready", timeout=10)
        elapsed = time.perf_counter() - started
    finally:
        os.kill(triton.child.pid, signal.SIGCONT)
    assert hung.status_code == 503 and "did not answer within 1 s" in hung.json()["detail"]
    assert elapsed < 3.0, elapsed
    assert httpx.get(f"{url}/ready", timeout=10).status_code == 200


def test_triton_timeout_is_503(pill_photos: Photos) -> None:
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
