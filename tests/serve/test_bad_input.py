"""Every bad request gets its status code and a JSON error, and the server keeps serving.

Real HTTP against the session's live servers, each test once per backend: embedded (limits:
256 KiB per image, 2 MP, 3 per batch) and Triton (the same proxy limits; the real
tritonserver decodes the photos and refuses more than 100,000 pixels, so a bad upload's
status comes from Triton's error, read with ``triton_contract.error_kind``).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_helpers import AUTH, Photos, ServerProcess, jpeg, png_header_only

pytestmark = pytest.mark.slow


@pytest.fixture
def client(any_api_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=any_api_server.url, timeout=30) as c:
        yield c


def _post(client: httpx.Client, data: bytes, name: str = "x.png",
          **params: object) -> httpx.Response:
    return client.post("/predict", params=params, headers=AUTH, files={"image": (name, data)})


def _still_serving(client: httpx.Client, photo: Path) -> None:
    assert client.get("/health").status_code == 200
    assert _post(client, photo.read_bytes()).status_code == 200


def _error(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["kind"] == kind and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


def test_bad_uploads_get_their_status_and_the_server_survives(
        client: httpx.Client, pill_photos: Photos) -> None:
    photo = pill_photos["single"].read_bytes()
    cases = [
        (b"%PDF-1.7 not a photo", 415, "unsupported_image"),   # not an image
        (b"", 415, "unsupported_image"),                       # empty file
        (b"GIF89a" + b"\x00" * 32, 415, "unsupported_image"),  # an image, not accepted
        (photo[: len(photo) // 2], 400, "corrupt_image"),      # truncated PNG
        (photo[:8] + b"\x00" * 200, 415, "unsupported_image"),  # PNG signature, no PNG after
        (jpeg()[:300], 400, "corrupt_image"),                  # truncated JPEG
        (png_header_only(20_000, 20_000), 413, "too_large"),   # pixel bomb: 400 MP header
        (png_header_only(2_000, 1_001), 413, "too_large"),     # just over 2 MP (embedded)
    ]
    for data, status, kind in cases:
        _error(_post(client, data), status, kind)
    _still_serving(client, pill_photos["single"])


MULTIPART_HEAD = b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\"\r\n\r\n"
MULTIPART_TAIL = b"\r\n--b--\r\n"


def test_body_limits_refuse_before_reading_everything(
        client: httpx.Client, pill_photos: Photos) -> None:
    big = b"\xff\xd8\xff" + b"\x00" * (300 * 1024)  # over 256 KiB
    _error(_post(client, big, "big.jpg"), 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield MULTIPART_HEAD
        for _ in range(100):
            yield b"\x00" * 8192
        yield MULTIPART_TAIL

    response = client.post("/predict", content=chunks(),
                           headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b"})
    _error(response, 413, "too_large")
    _still_serving(client, pill_photos["single"])


def test_declared_length_over_the_limit_is_refused_from_the_header(
        any_api_server: ServerProcess, client: httpx.Client, pill_photos: Photos) -> None:
    host, port = any_api_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /predict HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {AUTH['X-API-Key']}"
                     "\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     "Content-Length: 1000000000\r\n\r\n".encode())  # and no body at all
        reply = _read_until_closed(sock).decode("latin-1")  # the 413 says connection: close
    assert reply.startswith("HTTP/1.1 413"), reply
    assert '"kind":"too_large"' in reply and "x-request-id:" in reply.lower()
    _still_serving(client, pill_photos["single"])


def test_clients_that_send_the_whole_body_first_read_the_answer(
        any_api_server: ServerProcess, client: httpx.Client, pill_photos: Photos) -> None:
    """urllib writes all of a body before it reads: an answer given with the body unread
    must not reach it as "connection reset" (the issue's 11 and 40 MB uploads)."""
    for size in (11_000_000, 40_000_000):
        body = MULTIPART_HEAD + b"\x00" * size + MULTIPART_TAIL
        request = urllib.request.Request(
            f"{any_api_server.url}/predict", data=body, method="POST",
            headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 413
        assert json.loads(refused.value.read())["kind"] == "too_large"

    # the same without a Content-Length: chunks counted as they come, all sent before reading
    host, port = any_api_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST /predict HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {AUTH['X-API-Key']}\r\n"
                     "Content-Type: multipart/form-data; boundary=b\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"\x00" * 65536
        for part in [MULTIPART_HEAD, *[chunk] * 100, MULTIPART_TAIL, b""]:  # 6.5 MB
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        reply = _read_until_closed(sock).decode("latin-1")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert '"kind":"too_large"' in reply
    _still_serving(client, pill_photos["single"])


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []  # one recv() may end between the headers and the body
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_request_errors(client: httpx.Client, pill_photos: Photos) -> None:
    photo = pill_photos["single"].read_bytes()
    _error(_post(client, photo, pipeline="triple"), 422, "invalid_request")
    _error(_post(client, photo, top_k=0), 422, "invalid_request")
    _error(client.post("/predict", headers=AUTH, files={"photo": ("p.png", photo)}), 422,
           "invalid_request")
    _error(client.post("/predict", headers=AUTH, content=photo), 422, "invalid_request")
    _error(client.post("/predict", headers={**AUTH, "Content-Type": "multipart/form-data"},
                       content=b"garbage"), 400, "bad_request")
    _error(client.get("/nowhere", headers=AUTH), 404, "not_found")
    _still_serving(client, pill_photos["single"])


def test_batch_limits_and_per_image_errors(client: httpx.Client,
                                           pill_photos: Photos) -> None:
    photo = pill_photos["single"].read_bytes()
    four = [("images", (f"{i}.png", photo)) for i in range(4)]  # the test server allows 3
    _error(client.post("/batch", headers=AUTH, files=four), 413, "too_many_images")
    mixed = [("images", ("good.png", photo)), ("images", ("bad.txt", b"hello")),
             ("images", ("cut.png", photo[:100]))]
    response = client.post("/batch", headers=AUTH, files=mixed)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["status"] for i in items] == [200, 415, 400]
    assert [i["filename"] for i in items] == ["good.png", "bad.txt", "cut.png"]
    assert items[0]["prediction"]["pills"] and items[1]["error"]["kind"] == "unsupported_image"
    _still_serving(client, pill_photos["single"])


def test_exif_orientation_is_applied(client: httpx.Client) -> None:
    response = _post(client, jpeg(64, 48, exif_orientation=6), "rotated.jpg")  # 90° turn
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 48, "height": 64}
