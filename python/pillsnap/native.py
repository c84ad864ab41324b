"""Access to the Rust extension with a clear message when it has not been built."""

from __future__ import annotations

from types import ModuleType

from pillsnap.errors import PillsnapError


def native() -> ModuleType:
    try:
        from pillsnap import _native
    except ImportError as exc:
        raise PillsnapError(
            "the native extension pillsnap._native is not built; install the package with "
            "`pip install -e .` (or `maturin develop --release`) from the repository root"
            f" ({exc})"
        ) from None
    return _native
