"""The web page ships in the wheel: maturin packs every file under python/pillsnap/ that
git does not ignore, so the static files must exist and stay un-ignored."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pillsnap.serve.routers.web import STATIC

FILES = ("index.html", "app.js", "style.css")


def test_static_files_exist_and_are_not_git_ignored(repo: Path) -> None:
    paths = [STATIC / name for name in FILES]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", *map(str, paths)], cwd=repo,
                             capture_output=True, text=True, check=False)
    assert ignored.returncode == 1, f"git ignores: {ignored.stdout}"
