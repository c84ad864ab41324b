"""The typed stub ``python/pillsnap/_native.pyi`` says what the built extension does.

mypy's stubtest imports ``pillsnap._native`` and compares every name, signature, default and
class flag with the stub, so a change on the Rust side (``rust/src/python/``) that the stub
does not follow fails here. No allowlist: defaults that pyo3 cannot show are written ``...``
in the stub, which stubtest accepts, and stub-only names are private (``_PackHeader``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_stub_matches_the_extension(tmp_path: Path) -> None:
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "mypy_cache")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "pillsnap._native"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
