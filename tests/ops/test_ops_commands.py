"""Operations: releases round-trip through rollback, backups and log rotation keep data.

    PYTHONPATH=python python -m pytest tests/ops -q
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pillsnap.ops.__main__ import main
from pillsnap.ops.backup import backup_runs
from pillsnap.ops.logrotate import rotate_logs
from pillsnap.ops.release import current_version


def test_release_then_rollback_round_trip(exported: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "releases"
    assert main(["release", "--export", str(exported), "--version", "v1",
                 "--root", str(root)]) == 0
    assert main(["release", "--export", str(exported), "--version", "v2",
                 "--root", str(root)]) == 0
    assert current_version(root) == "v2"
    assert (root / "current" / "export" / "export.json").is_file()  # what the API loads

    # the checksum file is coreutils' format: checkable without PillSnap
    done = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=root / "v1",
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    with tarfile.open(root / "v1.tar.gz") as tar:
        assert "v1/export/classifier/model.onnx" in tar.getnames()

    capsys.readouterr()
    assert main(["rollback", "--root", str(root)]) == 0
    assert capsys.readouterr().out.strip() == "v1"
    assert current_version(root) == "v1"
    assert main(["rollback", "--root", str(root)]) == 0  # and back again
    assert current_version(root) == "v2"
    capsys.readouterr()
    assert main(["releases", "--root", str(root)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line[:4] for line in listing] == ["  v1", "* v2"]
    history = json.loads((root / "history.json").read_text())
    assert [h["version"] for h in history] == ["v1", "v2", "v1", "v2"]


def test_drugs_enrolled_into_the_active_release_keep_it_verifiable(
        one_box_export: Callable[[Path], Path], new_drug: dict[str, Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Enrollment changes the served export in place (releases/current/export): its gallery
    and enrollment files are the release's state, not in its checksums, so the release
    still verifies and can be activated again; a changed model still cannot."""
    from pillsnap.enroll.__main__ import main as enroll_main

    root = tmp_path / "releases"
    export = one_box_export(tmp_path / "export")
    assert main(["release", "--export", str(export), "--version", "v1", "--root",
                 str(root)]) == 0
    served = root / "current" / "export"
    assert enroll_main(["--export", str(served), "--k-code", new_drug["k_code"], "--drugs",
                        str(new_drug["drugs"]), *map(str, new_drug["photos"])]) == 0
    assert (served / "enrolled").is_dir() and (served / "gallery_history").is_dir()
    assert main(["verify", "v1", "--root", str(root)]) == 0
    assert main(["activate", "v1", "--root", str(root)]) == 0
    (served / "classifier" / "model.onnx").write_bytes(b"tampered")
    assert main(["verify", "v1", "--root", str(root)]) == 2


def test_a_tampered_release_is_never_activated(exported: Path, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "releases"
    for version in ("v1", "v2"):
        assert main(["release", "--export", str(exported), "--version", version,
                     "--root", str(root)]) == 0
    model = root / "v1" / "export" / "classifier" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10])  # a truncated copy
    assert main(["verify", "v1", "--root", str(root)]) == 2
    assert main(["rollback", "--root", str(root)]) == 2
    assert "changed: export/classifier/model.onnx" in caplog.text
    assert current_version(root) == "v2"  # still serving the intact release
    assert main(["release", "--export", str(exported), "--version", "v2",
                 "--root", str(root)]) == 2  # never overwritten
    assert main(["activate", "v9", "--root", str(root)]) == 2
    assert "no release 'v9'" in caplog.text


def test_release_needs_a_finished_export(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "half").mkdir()
    assert main(["release", "--export", str(tmp_path / "half"), "--root",
                 str(tmp_path / "r")]) == 2
    assert "not a finished export" in caplog.text
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_backup_skips_partial_checkpoints_and_prunes(tmp_path: Path) -> None:
    runs = tmp_path / "runs" / "exp01"
    runs.mkdir(parents=True)
    (runs / "best.pt").write_bytes(b"weights")
    (runs / "last.pt.tmp").write_bytes(b"half written")
    out = tmp_path / "backups"
    first = backup_runs(tmp_path / "runs", out, keep=2)
    with tarfile.open(first) as tar:
        names = tar.getnames()
    assert "runs/exp01/best.pt" in names and "runs/exp01/last.pt.tmp" not in names
    check = subprocess.run(["sha256sum", "-c", first.name + ".sha256"], cwd=out,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    for _ in range(2):
        backup_runs(tmp_path / "runs", out, keep=2)
    assert len(list(out.glob("runs-*.tar.gz"))) == 2 and not first.exists()


def test_rotate_logs_keeps_the_open_file_and_n_copies(tmp_path: Path) -> None:
    log = tmp_path / "exp" / "train.log"
    log.parent.mkdir()
    with log.open("a", encoding="utf-8") as writer:  # a process holding the log open
        for n in range(4):
            writer.write(f"round {n}\n" * 200)
            writer.flush()
            rotate_logs(tmp_path, max_bytes=100, keep=2)
        writer.write("after\n")
        writer.flush()
    assert log.read_text() == "after\n"  # the writer went on into the emptied file
    assert sorted(p.name for p in log.parent.iterdir()) == [
        "train.log", "train.log.1.gz", "train.log.2.gz"]
    assert gzip.decompress((log.parent / "train.log.1.gz").read_bytes()).decode() \
        .startswith("round 3")
    small = tmp_path / "small.log"
    small.write_text("tiny\n")
    assert rotate_logs(tmp_path, max_bytes=100, keep=2) == []
    assert os.path.getsize(small) == 5
