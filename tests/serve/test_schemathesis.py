"""Property-based requests generated from the app's own OpenAPI schema, with a valid key:
whatever schemathesis sends, the server answers without a 5xx.

Runs schemathesis' own command line (``st run``) against the live server: its pytest
plugin does not work with pytest 9 (it reads a private pytest attribute).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api_helpers import KEY, ServerProcess

pytestmark = pytest.mark.slow


def test_no_server_errors(api_server: ServerProcess, tmp_path: Path) -> None:
    st = shutil.which("st") or str(Path(sys.executable).with_name("st"))
    done = subprocess.run(
        [st, "run", f"{api_server.url}/openapi.json", "--checks", "not_a_server_error",
         "--header", f"X-API-Key: {KEY}", "--max-examples", "30", "--no-color"],
        capture_output=True, text=True, check=False, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # every operation of the schema (the uploads included) was generated for, none skipped
    paths = httpx.get(f"{api_server.url}/openapi.json", timeout=10).json()["paths"]
    assert {"/predict", "/batch"} <= set(paths)
    found = re.search(r"Operations:\s+(\d+) selected / (\d+) total", done.stdout)
    assert found and found[1] == found[2] and int(found[1]) >= len(paths)
    assert re.search(r"Fuzzing \(in [\d.]+s\)\s+✅ \d+ passed", done.stdout), done.stdout
