"""A real tritonserver killed (SIGKILL) with requests in flight: nothing of it survives, and
``python -m pillsnap.serve triton`` starts it again.

    python -m pytest tests/triton/test_crash.py -q

Killed mid-request, the bundled server used to leave 1 or 2 of its 6 python backend stubs
running under PID 1 with their /dev/shm regions (6 kills of 6 here). Each test checks that
``zero_server``, a server of another prefix and group, is left alone. About 25 s in all.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from pillsnap.child import Child, http_ok
from pillsnap.procs import Proc, processes
from pillsnap.serve.triton_server import TritonLaunch, TritonServer

pytestmark = pytest.mark.slow

PREFIX_FLAG = "shm-region-prefix-name="
STUB = "triton_python_backend_stub"


def left_by(pgid: int, prefix: str) -> list[Proc]:
    """Live processes of the group ``pgid`` or carrying the shm prefix ``prefix``."""
    return [p for p in processes() if not p.zombie and
            (p.pgid == pgid or any(a.startswith(prefix) for a in p.argv[1:]))]


def regions(prefix: str) -> list[str]:
    return sorted(p.name for p in Path("/dev/shm").glob(f"{prefix}*"))


def eventually(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
    return check()


@contextmanager
def traffic(url: str, photo: bytes, threads: int = 4) -> Iterator[list[int]]:
    """Threads posting ``photo`` to pill_combo and pill_single without pause; yields the
    running count of answers. Errors (the server is being killed) are expected."""
    done = [0]
    stop = threading.Event()

    def post(model: str) -> None:
        image = httpclient.InferInput("IMAGE", [len(photo)], "UINT8")
        image.set_data_from_numpy(np.frombuffer(photo, dtype=np.uint8))
        top_k = httpclient.InferInput("TOP_K", [1], "INT32")
        top_k.set_data_from_numpy(np.array([3], dtype=np.int32))
        while not stop.is_set():
            client = httpclient.InferenceServerClient(url.removeprefix("http://"),
                                                      network_timeout=10.0)
            try:
                client.infer(model, [image, top_k])
                done[0] += 1
            except Exception:  # refused or cut off: the server is being killed
                time.sleep(0.05)
            finally:
                client.close()

    workers = [threading.Thread(target=post, args=(("pill_combo", "pill_single")[i % 2],))
               for i in range(threads)]
    for worker in workers:
        worker.start()
    try:
        assert eventually(lambda: done[0] >= threads, 60), "no answers before the kill"
        yield done
    finally:
        stop.set()
        for worker in workers:
            worker.join()


@pytest.fixture
def bystander(zero_server: TritonServer) -> Iterator[list[int]]:
    """The pids of another running server's group: they must outlive the test."""
    assert zero_server.child is not None
    pids = [p.pid for p in left_by(zero_server.child.pid, zero_server.launch.shm_prefix)]
    assert len(pids) > 1  # the server and its stubs
    yield pids
    assert [p.pid for p in left_by(zero_server.child.pid,
                                   zero_server.launch.shm_prefix)] == pids
    assert zero_server.model_ready("pill_combo")


def test_a_server_killed_mid_request_leaves_nothing(
        many_repo: Path, triton_launch: Callable[..., TritonLaunch],
        pill_photos: dict[str, Path], bystander: list[int]) -> None:
    with TritonServer(triton_launch(many_repo)) as server:
        assert server.child is not None
        pid, prefix = server.child.pid, server.launch.shm_prefix
        stubs = [p for p in left_by(pid, prefix) if p.pid != pid]
        assert len(stubs) == 6 and all(Path(p.argv[0]).name == STUB for p in stubs)
        assert len(regions(prefix)) == 6
        with traffic(server.url, pill_photos["combo"].read_bytes()):
            os.kill(pid, signal.SIGKILL)
            # no stop(): the server's watcher reaps on its own
            assert eventually(lambda: not left_by(pid, prefix), 15), left_by(pid, prefix)
        assert regions(prefix) == []
        assert server.exit_code() == -signal.SIGKILL


def test_the_cli_restarts_a_killed_server_on_the_same_port(
        many_repo: Path, triton_launch: Callable[..., TritonLaunch],
        pill_photos: dict[str, Path], tmp_path: Path, bystander: list[int]) -> None:
    ports = triton_launch(many_repo).ports
    command = [sys.executable, "-m", "pillsnap.serve", "triton", "--repository", str(many_repo),
               f"triton.http_port={ports.http}", f"triton.grpc_port={ports.grpc}",
               f"triton.metrics_port={ports.metrics}", "triton.restart=on-failure",
               "triton.restart_max=2", "triton.exit_timeout_s=2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    url = f"http://127.0.0.1:{ports.http}"
    with Child.start(command, name="the launcher", log=tmp_path / "launcher.log",
                     env=env, grace_s=30) as launcher:
        launcher.wait_for_output("tritonserver ready", timeout_s=120)
        server = next(p for p in processes() if p.ppid == launcher.pid)
        prefix = next(a for a in server.argv if PREFIX_FLAG in a).split(PREFIX_FLAG)[1]
        old = left_by(server.pid, prefix)
        old_regions = regions(prefix)
        assert len(old) == 7 and len(old_regions) == 6
        with traffic(url, pill_photos["combo"].read_bytes()):
            os.kill(server.pid, signal.SIGKILL)
            launcher.wait_for_output(r"tritonserver exited \(code -9\); restart 1/2 in 1 s",
                                     timeout_s=30)
        launcher.wait_ready(lambda: launcher.log_text().count("tritonserver ready") == 2,
                            timeout_s=120)
        assert http_ok(f"{url}/v2/models/pill_combo/ready")
        assert http_ok(f"{url}/v2/models/pill_single/ready")
        # zombies count as gone: PID 1 collects the killed stubs' exit status when it likes
        running = {p.pid for p in processes() if not p.zombie}
        assert not running & {p.pid for p in old}  # the old server and its stubs
        assert not set(regions(prefix)) & set(old_regions)
        new = next(p for p in processes() if p.ppid == launcher.pid)
        assert len(left_by(new.pid, prefix)) == 7
        launcher.process.send_signal(signal.SIGTERM)
        assert launcher.process.wait(60) == 0, launcher.log_tail()
    assert "tritonserver stopped" in launcher.log_text()
    assert left_by(new.pid, prefix) == [] and regions(prefix) == []
    assert not http_ok(f"{url}/v2/health/live", timeout_s=1)
