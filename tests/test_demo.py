"""The README's first command, at CI's reduced size: the whole job runs (data, training,
export, Triton repository, the API) and the real /predict answers name the true K-codes
of the validation photos.

    PYTHONPATH=python python -m pytest tests/test_demo.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_quick_demo_answers_with_the_true_k_codes(tmp_path: Path) -> None:
    out = tmp_path / "demo_run"
    done = subprocess.run([sys.executable, "-m", "pillsnap.demo", "--profile", "quick",
                           "--out", str(out), "--stop", "--port", "0"],
                          capture_output=True, text=True, check=False, cwd=tmp_path,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "demo_result.json").read_text(encoding="utf-8"))
    for pipeline in ("single", "combo"):
        answer = result["predictions"][pipeline]
        assert answer["match"], (pipeline, answer)
        assert all(p["edi_code"] for p in answer["pills"])
    assert len(result["predictions"]["combo"]["truth"]) >= 2
    # every stage ran and the printed report names them
    assert set(result["stages_s"]) == {
        "synthetic AIHub dataset -> scan -> packs + YOLO view",
        "train the classifier, then the detector",
        "export ONNX (parity checked) + Triton repository", "start the API",
        "POST /predict for validation photos"}
    assert "[OK ] single" in done.stdout and "[OK ] combo" in done.stdout
    for folder in ("export", "triton_models", "runs/demo/det"):
        assert (out / folder).is_dir(), folder
