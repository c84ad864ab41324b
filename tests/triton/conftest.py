"""Real tritonservers on the repositories of tests/conftest.py (``zero_repo``: no pill
found anywhere; ``many_repo``: 6 boxes on every photo), one per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pillsnap.serve.triton_server import TritonLaunch, TritonServer


@pytest.fixture(scope="module")
def zero_server(zero_repo: Path,
                triton_launch: Callable[..., TritonLaunch]) -> Iterator[TritonServer]:
    with TritonServer(triton_launch(zero_repo)) as server:
        yield server


@pytest.fixture(scope="module")
def many_server(many_repo: Path,
                triton_launch: Callable[..., TritonLaunch]) -> Iterator[TritonServer]:
    with TritonServer(triton_launch(many_repo)) as server:
        yield server
