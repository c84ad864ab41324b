"""Feature sets bound what a config may turn on, and what gets imported."""

from __future__ import annotations

import pytest

from pillsnap import features


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
