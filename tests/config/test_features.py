"""Feature sets bound what a config may turn on, and what gets imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pillsnap.config import features


def test_sets_are_nested() -> None:
    assert features.includes("production", "advanced")
    assert features.includes("advanced", "mvp")
    assert not features.includes("mvp", "advanced")


def test_import_active_loads_only_the_smaller_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "MODULES", {
        "mvp": ("json",), "advanced": ("csv",), "production": ("this_module_does_not_exist",),
    })
    loaded = {m.__name__ for m in features.import_active("advanced")}
    assert loaded == {"json", "csv"}  # the production module is never imported
    with pytest.raises(ModuleNotFoundError):
        features.import_active("production")


def test_detector_view_is_refused_outside_advanced(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pillsnap.data", "yolo", "--out", str(tmp_path),
                           "active_feature_set=mvp"], capture_output=True, text=True,
                          check=False, cwd=tmp_path)
    assert done.returncode == 2
    assert "needs active_feature_set advanced" in done.stderr


def test_mvp_imports_no_detector_code() -> None:
    code = ("import sys; from pillsnap.config import features; features.import_active('mvp'); "
            "print('pillsnap.data.yolo_view' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    code = code.replace("'mvp'", "'advanced'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
