"""``python -m pillsnap.eval`` through both backends on the same photos: the figures agree.

    PYTHONPATH=python python -m pytest tests/triton/test_eval_backends.py -q

The export is ``many_export`` (its detector reports 6 boxes on every photo, so combo
photos exercise box matching and extra boxes), served in-process and by a real tritonserver.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pillsnap.config import PillsnapConfig
from pillsnap.eval.__main__ import evaluate
from pillsnap.serve.triton_server import TritonServer


def test_both_backends_give_the_same_answers_and_figures(
        many_export: Path, many_server: TritonServer, trained: dict[str, Path],
        export_cfg: Callable[..., PillsnapConfig], tmp_path: Path) -> None:
    cfg = export_cfg(trained["base"])
    reports = evaluate(cfg, export=many_export, triton_url=many_server.url.removeprefix(
        "http://"), out=tmp_path, progress=False)
    embedded, triton = reports["embedded"], reports["triton"]
    assert embedded["agreement"]["same_answer"] == 1.0 and embedded["agreement"]["photos"] == 19
    assert embedded["photos"] == triton["photos"] == {"total": 19, "single": 16, "combo": 3,
                                                      "failed": []}
    for section in ("single", "combo", "classes"):
        assert embedded[section] == triton[section], section
    # six boxes per combo photo: every pill found or not, at least 18 - 8 boxes are extra
    assert triton["combo"]["extra_boxes"] >= 10
    # the embedded runner alone compares every open-set score (it sees the logits);
    # no photo of this split is of an unknown drug
    assert embedded["open_set"]["unknown_pills"] == triton["open_set"]["unknown_pills"] == 0
    for name in ("embedded", "triton"):
        saved = json.loads((tmp_path / name / "eval_report.json").read_text(encoding="utf-8"))
        assert saved["backend"] == name and saved["targets"]
        assert (tmp_path / name / "eval_summary.md").is_file()


def test_triton_alone_reads_the_class_index_from_the_repository(
        many_repo: Path, many_server: TritonServer, trained: dict[str, Path],
        export_cfg: Callable[..., PillsnapConfig], tmp_path: Path) -> None:
    cfg = export_cfg(trained["base"], f"triton.repository={many_repo}")
    reports = evaluate(cfg, triton_url=many_server.url.removeprefix("http://"), out=tmp_path,
                       limit=4, progress=False)
    assert list(reports) == ["triton"] and reports["triton"]["photos"]["total"] == 4
    assert reports["triton"]["open_set"]["served"]["score"] == "mahalanobis"
    assert (tmp_path / "eval_report.json").is_file()
