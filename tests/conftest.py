"""Shared fixtures: the repository root and a clean working directory per test."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory with none of the serving variables set."""
    monkeypatch.chdir(tmp_path)
    for name in ("API_KEY", "LOG_LEVEL", "CORS_ALLOW_ORIGINS", "MODEL_PATH", "TRITON_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path
