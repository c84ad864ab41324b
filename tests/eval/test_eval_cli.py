"""``python -m pillsnap.eval`` as a user runs it, on the tiny trained export.

    PYTHONPATH=python python -m pytest tests/eval/test_eval_cli.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pillsnap.eval.__main__ import main
from pillsnap.infer.pipeline import OnnxPipeline


def _overrides(base: Path) -> list[str]:
    return ["active_feature_set=advanced", f"data.root={base / 'aihub'}",
            f"data.manifest_dir={base / 'manifest'}", f"run.out_dir={base / 'runs'}",
            "run.name=t", "logging.file=false"]


def test_the_command_writes_the_report_and_prints_the_summary(
        exported: Path, trained: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    report_path = tmp_path / "r.json"
    code = main(["--export", str(exported), "--out", str(tmp_path / "eval"), "--json",
                 str(report_path), "--limit", "6", *_overrides(trained["base"])])
    assert code == 0
    out = capsys.readouterr().out
    assert "# Evaluation (embedded backend)" in out and "## Targets" in out
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["photos"]["total"] == 6 and report["split"] == "val"
    for name in ("eval_summary.md", "risk_coverage.png", "reliability.png"):
        assert (tmp_path / "eval" / name).is_file(), name
    # the figures are the served answers': top-1 recomputed from the pipeline itself
    pipe = OnnxPipeline.open(exported)
    rows = [json.loads(line) for line in
            (trained["manifest"] / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    singles = [r for r in rows if r["split"] == "val"][:6]
    right = [pipe.predict((trained["base"] / "aihub" / r["path"]).read_bytes())["pills"][0]
             ["top1"]["k_code"] == r["pills"][0]["k_code"]
             for r in singles if r["kind"] == "single"]
    assert report["single"]["photos"] == len(right)
    assert report["single"]["top1"] == pytest.approx(sum(right) / len(right))


def test_a_missing_export_is_one_clear_error(trained: dict[str, Path], tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--export", str(tmp_path / "nothing"), *_overrides(trained["base"])]) == 2
    assert "is not a finished export" in caplog.text
