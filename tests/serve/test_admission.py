"""Admission control: a bounded queue per backend; over it, 503 ``overloaded`` at once.

    python -m pytest tests/serve/test_admission.py -q

The gate on its own (pure anyio: slots, FIFO, refusals, cancellation, Retry-After); the app
over a backend that answers when told (a /batch holds one slot; a waiting request keeps its
timeout); then a real server process with one worker and a queue of two under a burst of
concurrent /predict calls: the burst splits into answers and quick refusals, and the server
answers normally afterwards.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from api_helpers import AUTH, api_settings, jpeg
from pillsnap.serve.admission import AdmissionGate
from pillsnap.serve.app import create_app
from pillsnap.serve.backends.base import Readiness
from pillsnap.serve.errors import BackendTimeout, Overloaded, api_error
from pillsnap.serve.live import LiveServer

# --------------------------------------------------------------------------- the gate alone


def test_gate_admits_capacity_queues_max_queue_and_refuses_the_rest() -> None:
    async def main() -> None:
        gate = AdmissionGate(capacity=2, max_queue=1)
        release = anyio.Event()
        order: list[int] = []

        async def hold(n: int) -> None:
            async with gate.slot():
                order.append(n)
                await release.wait()

        async with anyio.create_task_group() as tasks:
            for n in range(3):
                tasks.start_soon(hold, n)
            await anyio.wait_all_tasks_blocked()
            assert (gate.busy, gate.waiting, order) == (2, 1, [0, 1])
            with pytest.raises(Overloaded) as refused:
                async with gate.slot():
                    pytest.fail("admitted past the queue")
            assert refused.value.retry_after_s >= 1
            release.set()
        assert order == [0, 1, 2] and (gate.busy, gate.waiting) == (0, 0)

    anyio.run(main)


def test_no_queue_refuses_as_soon_as_every_slot_is_held() -> None:
    async def main() -> None:
        gate = AdmissionGate(capacity=1, max_queue=0)
        async with gate.slot():
            with pytest.raises(Overloaded):
                async with gate.slot():
                    pass
        async with gate.slot():  # free again
            assert gate.busy == 1

    anyio.run(main)


def test_waiting_is_bounded_and_a_cancelled_waiter_leaves_the_queue() -> None:
    async def main() -> None:
        gate = AdmissionGate(capacity=1, max_queue=2)
        async with gate.slot():
            with pytest.raises(BackendTimeout, match=r"no worker was free within 0\.05 s"):
                async with gate.slot(wait_s=0.05):
                    pass
            with anyio.move_on_after(0.05):
                async with gate.slot():
                    pass
            assert gate.waiting == 0
        assert (gate.busy, gate.waiting) == (0, 0)

    anyio.run(main)


def test_a_slot_handed_to_a_cancelled_waiter_passes_on() -> None:
    async def main() -> None:
        gate = AdmissionGate(capacity=1, max_queue=2)
        got: list[str] = []

        async def wait_for_slot(name: str) -> None:
            async with gate.slot():
                got.append(name)

        holder = gate.slot()
        await holder.__aenter__()
        doomed = asyncio.create_task(wait_for_slot("cancelled"))
        await asyncio.sleep(0.01)
        following = asyncio.create_task(wait_for_slot("next"))
        await asyncio.sleep(0.01)
        assert gate.waiting == 2
        # no await between these two: the slot goes to "cancelled", which is cancelled
        # before it runs (a plain asyncio cancel, as a client's disconnect can bring), so
        # it must hand the slot on to "next"
        await holder.__aexit__(None, None, None)
        doomed.cancel()
        await asyncio.wait_for(following, 5)  # a lost slot would leave it waiting
        assert doomed.cancelled()
        assert got == ["next"] and (gate.busy, gate.waiting) == (0, 0)

    asyncio.run(main())


@pytest.mark.parametrize(("cap", "expected"), [(30, 2), (1, 1)])
def test_retry_after_is_the_work_ahead_at_the_recent_service_time(cap: int,
                                                                  expected: int) -> None:
    async def main() -> None:
        gate = AdmissionGate(capacity=1, max_queue=4, max_retry_after_s=cap)
        assert gate.retry_after_s() == 1  # nothing ahead
        async with gate.slot():
            await anyio.sleep(0.25)  # the service time seen so far: 0.25 s
        async with anyio.create_task_group() as tasks, gate.slot():
            for _ in range(4):
                tasks.start_soon(_hold_briefly, gate)
            await anyio.wait_all_tasks_blocked()
            # one holder and four waiters on one slot at 0.25 s each: 1.25 s, rounded up
            assert gate.retry_after_s() == expected

    anyio.run(main)


async def _hold_briefly(gate: AdmissionGate) -> None:
    async with gate.slot():
        pass


def test_overloaded_is_a_503_with_retry_after() -> None:
    error = api_error(Overloaded("busy", retry_after_s=4))
    assert error is not None
    assert (error.status_code, error.kind, error.headers) == (503, "overloaded",
                                                              {"Retry-After": "4"})


# ------------------------------------------------------- the app, over a backend that waits


class WaitingBackend:
    """Answers "no pill" once ``go`` is set: requests hold their slot as long as a test wants."""

    name, pipelines, concurrency = "waiting", ("single",), 1

    def __init__(self) -> None:
        self.go = threading.Event()

    async def start(self) -> None: ...

    async def close(self) -> None:
        self.go.set()

    async def readiness(self) -> Readiness:
        return Readiness(True, "a test backend")

    async def model_version(self) -> str | None:
        return "test"

    async def predict(self, data: bytes, *, pipeline: str, top_k: int,
                      request_id: str | None = None) -> Any:
        await anyio.to_thread.run_sync(self.go.wait, abandon_on_cancel=True)
        return {"pipeline": pipeline, "model_version": "test", "image": None, "pills": [],
                "reason": "no pill found", "recommend_combo": False, "timing_ms": {}}


async def _until(check: Any) -> None:
    with anyio.fail_after(10):
        while not check():
            await anyio.sleep(0.01)


def test_a_batch_holds_one_slot_and_a_waiting_request_keeps_its_timeout() -> None:
    backend = WaitingBackend()
    app = create_app(api_settings(None, max_queue=1, request_timeout_s=1.0), backend=backend)
    gate: AdmissionGate = app.state.gate
    photo = jpeg()

    async def scenario(url: str) -> dict[str, httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=AUTH) as client:
            def predict() -> Any:
                return client.post("/predict", files={"image": ("p.jpg", photo)})

            batch = asyncio.create_task(client.post("/batch", files=[
                ("images", ("a.jpg", photo)), ("images", ("b.jpg", photo))]))
            await _until(lambda: gate.busy == 1)
            waiting = asyncio.create_task(predict())
            await _until(lambda: gate.waiting == 1)
            refused = await predict()  # one computing (the batch), one waiting: full
            timed_out = await waiting  # waits its serve.request_timeout_s, then gives up
            backend.go.set()
            return {"batch": await batch, "refused": refused, "timed_out": timed_out}

    with LiveServer(app) as server:
        started = time.perf_counter()
        answers = asyncio.run(scenario(server.url))
        assert time.perf_counter() - started < 5
        metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    refused, timed_out, batch = answers["refused"], answers["timed_out"], answers["batch"]
    assert refused.status_code == 503 and refused.json()["kind"] == "overloaded"
    assert int(refused.headers["retry-after"]) >= 1
    assert timed_out.status_code == 503 and timed_out.json()["kind"] == "backend_timeout"
    assert "within 1 s" in timed_out.json()["detail"]
    assert batch.status_code == 200 and [i["status"] for i in batch.json()["items"]] == [200, 200]
    assert batch.json()["timing_ms"]["queue"] >= 0
    assert 'pillsnap_errors_total{kind="overloaded"} 1.0' in metrics
    assert (gate.busy, gate.waiting) == (0, 0)


# --------------------------------------------------------------------------- a real server

BURST = 24
MAX_QUEUE = 2
# An AIHub-size photo (976 x 1280), so a request costs a decode and a resize, not only HTTP.
PHOTO_SIZE = (976, 1280)


async def _timed_post(client: httpx.AsyncClient, photo: bytes) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await client.post("/predict", headers=AUTH, files={"image": ("p.jpg", photo)})
    return time.perf_counter() - started, response


async def _burst(url: str, photo: bytes) -> tuple[list[tuple[float, httpx.Response]], int]:
    """``BURST`` concurrent /predict calls and, in the middle of them, a /health probe."""
    limits = httpx.Limits(max_connections=BURST + 1)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        posts = [_timed_post(client, photo) for _ in range(BURST)]
        answers = await asyncio.gather(*posts, client.get("/health"))
    *timed, health = answers
    assert isinstance(health, httpx.Response)
    return timed, health.status_code  # type: ignore[return-value]


@pytest.mark.slow
def test_a_burst_over_the_queue_is_refused_at_once(api_launcher: Any, exported: Path,
                                                   tmp_path: Path) -> None:
    photo = jpeg(*PHOTO_SIZE)
    with api_launcher(tmp_path, "--model-path", str(exported), "serve.max_concurrent=1",
                      f"serve.max_queue={MAX_QUEUE}") as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        singles = []
        for _ in range(5):  # warm, then one request's own time with nothing else running
            started = time.perf_counter()
            assert client.post("/predict", headers=AUTH,
                               files={"image": ("p.jpg", photo)}).status_code == 200
            singles.append(time.perf_counter() - started)
        single = statistics.median(singles[1:])

        timed, health = asyncio.run(_burst(server.url, photo))

        assert health == 200  # probes never wait in the queue
        ok = [t for t, r in timed if r.status_code == 200]
        refused = [(t, r) for t, r in timed if r.status_code == 503]
        assert len(ok) + len(refused) == BURST, [r.status_code for _, r in timed]
        assert len(ok) >= 1 + MAX_QUEUE and refused, (len(ok), len(refused))
        for _, response in refused:
            assert response.json()["kind"] == "overloaded", response.text
            assert int(response.headers["retry-after"]) >= 1
        # Quick: every refusal came back sooner than the burst takes to compute one by one
        # (what its last caller waits without a bound). Not "before the slowest answer":
        # each time includes sending the upload (read before the gate) from one client
        # loop, and with the Rust photo engine an answer takes about as long as that.
        slowest_refusal = max(t for t, _ in refused)
        assert slowest_refusal < BURST * single, (slowest_refusal, single)

        after = client.post("/predict", headers=AUTH, files={"image": ("p.jpg", photo)})
        assert after.status_code == 200 and after.json()["timing_ms"]["queue"] >= 0
        metrics = client.get("/metrics", headers=AUTH).text
        counted = re.search(r'^pillsnap_errors_total\{kind="overloaded"\} (\S+)$', metrics, re.M)
        assert counted and float(counted[1]) == len(refused)
        assert re.search(r"^pillsnap_queue_depth 0\.0$", metrics, re.M)
        assert re.search(r"^pillsnap_backend_busy 0\.0$", metrics, re.M)
