"""The package's floors: every import points down, so no circle can form.

    python -m pytest tests/test_layers.py -q

A module may import its own sub-package and any package on a lower floor, never one on its
own floor or above. ``contract`` sits below every package that uses it because the pack
writer, the trainer, export and both serving backends must crop and answer the same way,
and above the extension, which ``contract/photo.py`` runs where it is installed. The Triton
python models get copies of the ``contract`` modules (``COPIED``) and import no
``pillsnap`` at all, with one exception: ``photo.py``'s guarded import of the extension
(``GUARDED``), inside a ``try`` whose ``except ImportError`` keeps the Pillow path where
PillSnap is not installed (the NGC container).
Function-level imports count too: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "pillsnap"

# Lowest first. ``__init__`` is the package's own ``__init__.py`` (``__version__``).
FLOORS: tuple[frozenset[str], ...] = (
    frozenset({"errors"}),
    frozenset({"__init__", "logs", "child", "procs", "cli"}),  # stdlib
    frozenset({"_native"}),  # the Rust extension: raises pillsnap.errors' exceptions
    # native: its typed importer; contract: stdlib, numpy, Pillow (+ the guarded extension)
    frozenset({"contract", "native"}),
    frozenset({"config"}),
    frozenset({"data"}),
    frozenset({"train", "infer"}),
    frozenset({"serve", "export", "enroll"}),
    frozenset({"eval"}),
    frozenset({"bench", "demo", "ops", "__main__"}),
)
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}
TRITON_MODELS = PACKAGE / "export" / "triton" / "models"
# The files copied into Triton's python models -> the pillsnap units each may import, only
# inside a module-level ``try: ... except ImportError:`` (see test_guarded_imports_...).
COPIED = {"contract/ops.py": frozenset(), "contract/photo.py": frozenset({"_native", "errors"}),
          "contract/recipe.py": frozenset(), "contract/gallery.py": frozenset(),
          "contract/decide.py": frozenset()}


def _unit(path: Path) -> str:
    """The top-level unit a file belongs to: its sub-package, or its module's name."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_units(tree: ast.AST) -> set[str]:
    units: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "pillsnap":  # from pillsnap import x: x is a unit or __init__'s
                names = [f"pillsnap.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "pillsnap" and len(parts) > 1:
                unit = parts[1]
                units.add(unit if unit in FLOOR else "__init__")
    return units


def _arrows() -> list[tuple[str, str, str]]:
    """(file, its unit, imported unit) for every import between two different units."""
    arrows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for unit in _imported_units(ast.parse(path.read_text(encoding="utf-8"))):
            if unit != _unit(path):
                arrows.append((str(path.relative_to(PACKAGE)), _unit(path), unit))
    return arrows


def test_every_unit_has_a_floor() -> None:
    units = {_unit(p) for p in PACKAGE.rglob("*.py")} | {_unit(p) for p in PACKAGE.glob("*.so")}
    units = {u.split(".")[0] for u in units}
    assert units - FLOOR.keys() == set(), "give the new package a floor in FLOORS"


def test_imports_point_down() -> None:
    wrong = [f"{file}: {src} (floor {FLOOR[src]}) imports {dst} (floor {FLOOR[dst]})"
             for file, src, dst in _arrows() if FLOOR[dst] >= FLOOR[src]]
    assert wrong == []


@pytest.mark.parametrize("path", sorted(TRITON_MODELS.glob("*.py")), ids=lambda p: p.name)
def test_triton_models_import_no_pillsnap(path: Path) -> None:
    assert _imported_units(ast.parse(path.read_text(encoding="utf-8"))) == set()


@pytest.mark.parametrize("name", sorted(COPIED))
def test_copied_contract_files_import_only_their_guarded_units(name: str) -> None:
    tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
    assert _imported_units(tree) == COPIED[name]
    guarded = [node for node in tree.body if isinstance(node, ast.Try) and _catches_import(node)]
    outside = [node for node in tree.body if node not in guarded]
    assert _imported_units(ast.Module(body=outside, type_ignores=[])) == set()


def _catches_import(node: ast.Try) -> bool:
    return any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError",
                                                              "ModuleNotFoundError")
               for h in node.handlers)


def test_the_guard_check_sees_an_unguarded_import() -> None:
    tree = ast.parse("try:\n    from pillsnap import _native\nexcept OSError:\n    pass\n")
    assert not any(isinstance(n, ast.Try) and _catches_import(n) for n in tree.body)


def test_the_check_sees_an_upward_import() -> None:
    tree = ast.parse("def f():\n    from pillsnap.serve import app\nimport pillsnap.data.pack\n")
    assert _imported_units(tree) == {"serve", "data"}
