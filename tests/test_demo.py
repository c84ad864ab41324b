"""The README's first command, at CI's reduced size: the whole job runs (data, training,
export, Triton repository, the API) and the real /predict answers name the true K-codes
of the validation photos; a held-out drug, flagged unknown, is enrolled from its training
photos while the API runs and then named on a photo it has not seen.

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
    drugs = json.loads((out / "export" / "drugs.json").read_text(encoding="utf-8"))
    for pipeline in ("single", "combo"):
        answer = result["predictions"][pipeline]
        assert answer["match"], (pipeline, answer)
        # the EDI code is the drug table's (the synthetic catalogue, like AIHub's labels,
        # leaves some empty)
        assert all(p["edi_code"] == drugs[p["k_code"]]["edi_code"] for p in answer["pills"])
    assert len(result["predictions"]["combo"]["truth"]) >= 2
    # every stage ran and the printed report names them
    assert set(result["stages_s"]) == {
        "synthetic AIHub dataset -> scan -> packs + YOLO view",
        "train the classifier, then the detector",
        "export ONNX (parity checked) + Triton repository", "start the API",
        "POST /predict for validation photos",
        "evaluate the served pipeline on every validation photo",
        "enroll the held-out drug from its training photos, ask again"}
    assert "[OK ] single" in done.stdout and "[OK ] combo" in done.stdout
    # a photo of a drug the model never learnt is sent too, and the evaluation counts every
    # validation photo: 20 known singles, 10 of the 2 held-out drugs, 8 combinations
    assert result["predictions"]["unknown"]["truth"]
    evaluation = result["evaluation"]
    assert evaluation["single"]["photos"] == 20 and evaluation["combo"]["photos"] == 8
    assert evaluation["open_set"]["unknown_pills"] == 10
    assert "## Unknown drugs (not in the class index)" in done.stdout
    assert "PASS single top-1" in done.stdout
    # the evaluation enrolled the held-out drugs from 1 and 3 of their 6 training photos
    # (the ones the detector finds a pill in: a detector trained on 4 drugs can miss a
    # new-looking one, which is then listed, not enrolled)
    enrolled = evaluation["enrolled"]
    assert [r["photos"] for r in enrolled["shots"]] == [1, 3]
    for row in enrolled["shots"]:
        assert row["drugs"] >= 1 and row["pills"] == 5 * row["drugs"]
        assert row["known_change"] >= -0.01
    assert all("no pill found" in why for why in enrolled["skipped"])
    # the loop: unknown -> python -m pillsnap.enroll (the server keeps running) -> named
    unknown = result["predictions"]["unknown"]
    assert unknown["match"]  # flagged unknown before
    loop = result["enrollment"]
    assert loop["enrolled"] and loop["photos"] >= 3 and loop["before"]["match"]
    # the held-out drugs the detector finds no pill of are refused, with the reason
    assert all("no pill found" in r["error"] for r in loop["refused"])
    [pill] = loop["answer"]["pills"]
    assert pill["k_code"] == loop["k_code"] and not pill["unknown"]
    assert pill["edi_code"] == json.loads((out / "manifest" / "drugs.json").read_text(
        encoding="utf-8"))[loop["k_code"]]["edi_code"]
    for folder in ("export", "triton_models", "runs/demo/det"):
        assert (out / folder).is_dir(), folder
