"""One command rolls the API back: ``python -m pillsnap.ops rollback`` repoints
``releases/current`` and a server on ``releases/current/export`` answers ``/version`` with
the previous release's models, without a restart. A release that cannot load leaves the
serving one in place.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api_helpers import AUTH, api_settings
from pillsnap.export.metadata import write_metadata
from pillsnap.serve.app import create_app
from pillsnap.serve.backends.embedded import RELOAD_CHECK_S
from pillsnap.serve.live import LiveServer


def _version_of(url: str) -> str:
    return httpx.get(f"{url}/version", headers=AUTH, timeout=10).json()["model_version"]


def _wait_while(url: str, version: str, timeout_s: float = 10.0) -> str:
    """The model version /version reports once it is no longer ``version`` (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    seen = _version_of(url)
    while seen == version and time.monotonic() < deadline:
        time.sleep(RELOAD_CHECK_S / 4)
        seen = _version_of(url)
    return seen


def _ops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pillsnap.ops", *args], capture_output=True,
                          text=True, check=False, timeout=120)


@pytest.fixture
def releases(exported: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """Two releases of the tiny export whose classifiers carry different model versions."""
    second = tmp_path / "export-b"
    shutil.copytree(exported, second)
    write_metadata(second / "classifier" / "model.onnx", {"model_version": "cls-b"})
    root = tmp_path / "releases"
    for version, export in (("r1", exported), ("r2", second)):
        done = _ops("release", "--export", str(export), "--version", version,
                    "--root", str(root))
        assert done.returncode == 0, done.stderr
    return root, "r1", "r2"


def test_rollback_is_served_without_a_restart(releases: tuple[Path, str, str],
                                              pill_photos: dict[str, Path]) -> None:
    root, _, _ = releases
    settings = api_settings(root / "current" / "export")
    with LiveServer(create_app(settings)) as server:
        newer = _version_of(server.url)
        assert newer.startswith("cls-b")

        assert _ops("rollback", "--root", str(root)).returncode == 0
        older = _wait_while(server.url, newer)
        assert older != newer and not older.startswith("cls-b")

        photo = pill_photos["single"].read_bytes()
        answer = httpx.post(f"{server.url}/predict", headers=AUTH, timeout=30,
                            files={"image": ("p.png", photo, "image/png")})
        assert answer.status_code == 200 and answer.json()["model_version"] == older

        assert _ops("activate", "r2", "--root", str(root)).returncode == 0
        assert _wait_while(server.url, older) == newer


def test_a_release_that_cannot_load_keeps_the_old_one(releases: tuple[Path, str, str],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    root, _, _ = releases
    settings = api_settings(root / "current" / "export")
    with LiveServer(create_app(settings)) as server:
        serving = _version_of(server.url)
        # a link swapped by hand to a folder that is no export at all
        (root / "broken" / "export").mkdir(parents=True)
        (root / "current").unlink()
        (root / "current").symlink_to("broken")
        time.sleep(RELOAD_CHECK_S * 1.5)
        assert _version_of(server.url) == serving
        assert httpx.get(f"{server.url}/ready").status_code == 200
    assert "cannot be loaded" in caplog.text
