"""Access to the Rust extension, typed by its stub, with a clear message when it is not built.

Callers import the extension where they use it::

    from pillsnap.native import _native

Type checkers read ``_native.pyi`` through the import below (every signature and result
type); at run time the name is served by ``__getattr__`` (PEP 562), which loads the extension
on first use and, when it is missing, says how to build it instead of a bare ImportError.
Importing this module loads nothing, so the config and data tools work in a plain checkout.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from pillsnap.errors import PillsnapError

if TYPE_CHECKING:
    # `as _native` marks a re-export, which strict type checkers need to let callers import it.
    from pillsnap import _native as _native  # noqa: PLC0414


def __getattr__(name: str) -> ModuleType:
    if name != "_native":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from pillsnap import _native
    except ImportError as exc:
        raise PillsnapError(
            "the native extension pillsnap._native is not built; install the package with "
            "`pip install -e .` (or `maturin develop --release`) from the repository root"
            f" ({exc})"
        ) from None
    return _native
