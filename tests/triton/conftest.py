"""Repositories written from the tiny export, and real tritonservers on them (one per module).

Two repositories, because the three-epoch detector scores every photo alike (about 0.012 for
its best box): at its exported threshold (0.25) it finds no pill anywhere (``zero``); with
the threshold lowered to 0.0005 in a copy of the export it finds 6 boxes everywhere
(``many``: more crops than ``triton.classifier_max_batch=2``, so crop_classify calls the
classifier in chunks). The in-process OnnxPipeline on the same export folder is the reference.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pillsnap.export.__main__ import main as export_main
from pillsnap.export.metadata import write_metadata
from pillsnap.serve.triton_server import TritonLaunch, TritonServer, free_ports

MAX_BATCH = 2
MAX_PIXELS = 100_000  # the test photos have 20,480; a 400x300 upload is too large


def write_repo(export: Path, out: Path) -> Path:
    code = export_main(["--triton", "--from", str(export), "--out", str(out),
                        f"triton.classifier_max_batch={MAX_BATCH}", "triton.cpu_threads=1",
                        f"serve.max_pixels={MAX_PIXELS}"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def many_export(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the export whose detector reports 6 boxes on every photo."""
    folder = tmp_path_factory.mktemp("many") / "export"
    shutil.copytree(exported, folder)
    write_metadata(folder / "detector" / "model.onnx", {"conf_threshold": 0.0005})
    return folder


@pytest.fixture(scope="session")
def zero_repo(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repo(exported, tmp_path_factory.mktemp("zero") / "triton_models")


@pytest.fixture(scope="session")
def many_repo(many_export: Path) -> Path:
    return write_repo(many_export, many_export.parent / "triton_models")


def launch(repository: Path, **extra: object) -> TritonLaunch:
    return TritonLaunch(repository, free_ports(), startup_timeout_s=90.0, **extra)


@pytest.fixture(scope="session")
def triton_launch() -> Callable[..., TritonLaunch]:
    """``triton_launch(repository)``: a launch on free ports (tests start servers with it)."""
    return launch


@pytest.fixture(scope="session")
def classifier_max_batch() -> int:
    return MAX_BATCH


@pytest.fixture(scope="module")
def zero_server(zero_repo: Path) -> Iterator[TritonServer]:
    with TritonServer(launch(zero_repo)) as server:
        yield server


@pytest.fixture(scope="module")
def many_server(many_repo: Path) -> Iterator[TritonServer]:
    with TritonServer(launch(many_repo)) as server:
        yield server
