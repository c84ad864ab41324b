"""Property-based requests generated from the app's own OpenAPI schema, with a valid key,
and every check schemathesis has: no 5xx, and each answer is the one the schema declares
(status, content type, body, headers; public operations declare no security, keyed ones
refuse a missing key). ``schemathesis.toml`` beside this file lists the one allowance.

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

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_the_server_does_what_its_schema_says(api_server: ServerProcess, tmp_path: Path) -> None:
    st = shutil.which("st") or str(Path(sys.executable).with_name("st"))
    done = subprocess.run(
        [st, "--config-file", str(CONFIG), "run", f"{api_server.url}/openapi.json",
         "--checks", "all",
         "--header", f"X-API-Key: {KEY}", "--max-examples", "30", "--no-color"],
        capture_output=True, text=True, check=False, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # every operation of the schema (the uploads included) was generated for, none skipped
    paths = httpx.get(f"{api_server.url}/openapi.json", timeout=10).json()["paths"]
    assert {"/predict", "/batch"} <= set(paths)
    found = re.search(r"Operations:\s+(\d+) selected / (\d+) total", done.stdout)
    assert found and found[1] == found[2] and int(found[1]) >= len(paths)
    for phase in ("Coverage", "Fuzzing"):
        assert re.search(phase + r" \(in [\d.]+s\)\s+✅ \d+ passed", done.stdout), done.stdout
