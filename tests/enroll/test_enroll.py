"""``python -m pillsnap.enroll``: a new drug joins a running server's answers without a
restart, on both backends (real HTTP, a real tritonserver); bad input changes nothing.

    python -m pytest tests/enroll -q

The tiny test classifier (one epoch at 32 px) tells drugs apart poorly, so these tests check
the mechanism: the enrolled drug's own photos come back under its K-code with its drug-table
entry once it is enrolled, and no longer once it is removed. How well enrollment identifies
unseen photos of a drug is measured by ``python -m pillsnap.eval --enroll`` on the demo
(docs/benchmarks.md).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_helpers import AUTH
from pillsnap.contract.gallery import GALLERY_FILE, Gallery
from pillsnap.enroll import actions
from pillsnap.enroll.__main__ import main
from pillsnap.enroll.store import LOG_FILE, Stores
from pillsnap.infer.bundle import read_recipe
from pillsnap.infer.pipeline import OnnxPipeline
from pillsnap.serve.triton_server import TritonLaunch, TritonServer


def _enroll(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pillsnap.enroll", *args,
                           "logging.file=false"], capture_output=True, text=True, timeout=120,
                          check=False)


def _first_pill(url: str, photo: Path) -> dict[str, Any]:
    response = httpx.post(f"{url}/predict", headers=AUTH, timeout=30,
                          files={"image": (photo.name, photo.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    return response.json()["pills"][0]


def _check_round_trip(url: str, export: Path, new_drug: dict[str, Any],
                      *repository: str) -> None:
    """unknown -> enroll -> named with its metadata -> remove -> as before -> rollback."""
    photo, code = new_drug["photos"][0], new_drug["k_code"]
    before = _first_pill(url, photo)
    assert before["unknown"] and before["top1"]["k_code"] != code

    done = _enroll("--export", str(export), *repository, "--k-code", code, "--drugs",
                   str(new_drug["drugs"]), *map(str, new_drug["photos"]))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["photos"] == 4 and report["version"] == 2
    assert f"enrollment: add {code}; gallery version 1 -> 2" in done.stderr
    after = _first_pill(url, photo)  # the same server, no restart
    assert after["top1"]["k_code"] == code and not after["unknown"]
    assert after["open_set_score"] > before["open_set_score"]
    entry = new_drug["entry"]
    assert after["top1"]["name"] == {"ko": entry["name_ko"], "en": entry["name_en"]}
    assert after["top1"]["edi_codes"] == entry["edi_codes"]
    assert after["top1"]["imprints"]["front"] == entry["print_front"]

    assert _enroll("--export", str(export), *repository, "--remove", code).returncode == 0
    again = _first_pill(url, photo)
    assert again["top1"]["k_code"] == before["top1"]["k_code"] and again["unknown"]
    assert again["open_set_score"] == before["open_set_score"]
    assert _enroll("--export", str(export), *repository, "--rollback").returncode == 0
    assert _first_pill(url, photo)["top1"]["k_code"] == code  # enrolled again


def test_the_embedded_api_answers_an_enrolled_drug_without_a_restart(
        one_box_export: Callable[[Path], Path], new_drug: dict[str, Any],
        api_launcher: Callable[..., Any], tmp_path: Path) -> None:
    export = one_box_export(tmp_path / "export")
    with api_launcher(tmp_path, "--model-path", str(export)) as server:
        _check_round_trip(server.url, export, new_drug)
    listing = actions.listing(export)
    assert listing["version"] == 4 and [e["k_code"] for e in listing["enrolled"]] == [
        new_drug["k_code"]]
    log = [json.loads(line) for line in
           (export / LOG_FILE).read_text(encoding="utf-8").splitlines()]
    assert [e["action"] for e in log] == ["add", "remove", "rollback"]
    assert sorted(p.name for p in (export / "enrolled" / new_drug["k_code"]).iterdir()) == sorted(
        f"{d}.png" for d in Gallery.load(export / GALLERY_FILE).enrolled[0].digests)


@pytest.mark.slow
def test_triton_answers_an_enrolled_drug_without_a_reload(
        one_box_export: Callable[[Path], Path], new_drug: dict[str, Any],
        api_launcher: Callable[..., Any], triton_launch: Callable[..., TritonLaunch],
        tmp_path: Path) -> None:
    from pillsnap.export.__main__ import main as export_main

    export = one_box_export(tmp_path / "export")
    repository = tmp_path / "triton_models"
    assert export_main(["--triton", "--from", str(export), "--out", str(repository),
                        "triton.cpu_threads=1"]) == 0
    with TritonServer(triton_launch(repository)) as triton, \
            api_launcher(tmp_path, "--backend", "triton", "--triton-url",
                         triton.url.removeprefix("http://")) as server:
        _check_round_trip(server.url, export, new_drug, "--triton-repo", str(repository))
        # and Triton answers as the embedded pipeline over the export does
        photo = new_drug["photos"][1]
        served = _first_pill(server.url, photo)
        local = OnnxPipeline.open(export).predict(photo.read_bytes())["pills"][0]
        assert served["top1"]["k_code"] == local["top1"]["k_code"]
        assert served["open_set_score"] == pytest.approx(local["open_set_score"], abs=1e-3)
        assert served["top1"]["confidence"] == pytest.approx(local["top1"]["confidence"],
                                                             abs=1e-5)


# ---------------------------------------------------------------------------- bad input


@pytest.fixture
def guarded(one_box_export: Callable[[Path], Path], tmp_path: Path) -> Path:
    return one_box_export(tmp_path / "export")


def _unchanged(export: Path, gallery: bytes) -> bool:
    return ((export / GALLERY_FILE).read_bytes() == gallery and not (export / LOG_FILE).exists()
            and not (export / "gallery_history").exists()
            and not (export / "enrolled").exists())


def _refused(caplog: pytest.LogCaptureFixture, export: Path, *args: str) -> str:
    gallery = (export / GALLERY_FILE).read_bytes()
    caplog.clear()
    assert main(["--export", str(export), *args, "logging.file=false"]) == 2
    assert _unchanged(export, gallery)
    return caplog.text


def test_bad_enrollment_input_is_refused_and_changes_nothing(
        guarded: Path, new_drug: dict[str, Any], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    photos = [str(p) for p in new_drug["photos"]]
    code, table = new_drug["k_code"], str(new_drug["drugs"])
    trained = read_recipe(guarded).k_codes[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(new_drug["photos"][1].read_bytes()[:300])
    text = tmp_path / "notes.png"
    text.write_text("not a photo")
    cases = [
        (["--k-code", code, "--drugs", table, *photos[:2]], "at least 3 are needed"),
        (["--k-code", trained, "--drugs", table, *photos], "one of the model's own classes"),
        (["--k-code", code, "--drugs", table, *photos[:2], str(broken)],
         f"{broken}: .*(corrupt|damaged|truncated)"),
        (["--k-code", code, "--drugs", table, *photos[:2], str(text)],
         f"{text}: not an image"),
        (["--k-code", code, "--drugs", table, *photos[:2], photos[0]], "is the same photo as"),
        (["--k-code", code, *photos], "no name or EDI code"),  # the manifest's table lacks it
        (["--k-code", "K-12", "--drugs", table, *photos], "is not a K-code"),
        (["--k-code", code, "--drugs", table, photos[0], photos[1], str(tmp_path / "gone.png")],
         "cannot read .*gone.png"),
    ]
    for args, message in cases:
        log = _refused(caplog, guarded, *args, f"data.manifest_dir={tmp_path}")
        assert any(re.search(message, r.getMessage()) for r in caplog.records), (message, log)


def test_a_second_enrollment_while_one_runs_is_refused(
        guarded: Path, new_drug: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    with Stores.open(guarded):  # an enrollment in progress holds the lock
        log = _refused(caplog, guarded, "--k-code", new_drug["k_code"], "--drugs",
                       str(new_drug["drugs"]), *map(str, new_drug["photos"]))
    assert "another enrollment is changing" in log and "try again" in log
    # once it is done, the same command goes through
    assert main(["--export", str(guarded), "--k-code", new_drug["k_code"], "--drugs",
                 str(new_drug["drugs"]), *map(str, new_drug["photos"])]) == 0
    caplog.clear()
    assert main(["--export", str(guarded), "--k-code", new_drug["k_code"], "--drugs",
                 str(new_drug["drugs"]), *map(str, new_drug["photos"])]) == 2
    assert "was enrolled on" in caplog.text and "remove it first" in caplog.text


def test_photos_the_detector_cannot_use_are_named(
        exported: Path, many_export: Path, new_drug: dict[str, Any], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """With a detector, an enrollment photo must show one pill: the three-epoch detector at
    its threshold finds none anywhere (``exported``), at 0.0005 six (``many_export``)."""
    args = ["--k-code", new_drug["k_code"], "--drugs", str(new_drug["drugs"]),
            *map(str, new_drug["photos"])]
    none = tmp_path / "none"
    shutil.copytree(exported, none)
    assert "no pill found in" in _refused(caplog, none, *args)
    many = tmp_path / "many"
    shutil.copytree(many_export, many)
    assert "shows several pills" in _refused(caplog, many, *args)
    # --skip-unusable leaves such photos out, but not below enroll.min_photos
    log = _refused(caplog, many, *args, "--skip-unusable")
    assert "only 0 of the 4 photos" in log and "shows several pills" in log


def test_a_failed_write_puts_back_what_it_replaced(
        guarded: Path, new_drug: dict[str, Any], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The export's gallery is written, then the repository's copy cannot be (a folder stands
    where the file goes): the export's is put back and the command fails."""
    repository = tmp_path / "repo"
    folder = repository / "postprocess" / "1"
    folder.mkdir(parents=True)
    (repository / "pillsnap_repository.json").write_text('{"triton_model_version": "1"}')
    shutil.copyfile(guarded / "recipe.json", folder / "recipe.json")
    (folder / GALLERY_FILE).mkdir()
    gallery = (guarded / GALLERY_FILE).read_bytes()
    caplog.clear()
    assert main(["--export", str(guarded), "--triton-repo", str(repository), "--k-code",
                 new_drug["k_code"], "--drugs", str(new_drug["drugs"]),
                 *map(str, new_drug["photos"])]) == 2
    assert "nothing was changed" in caplog.text
    assert (guarded / GALLERY_FILE).read_bytes() == gallery
    assert not (guarded / LOG_FILE).exists()
    # a repository written from another export is refused before anything is read
    shutil.copyfile(guarded / "drugs.json", folder / "recipe.json")
    log = _refused(caplog, guarded, "--triton-repo", str(repository), "--rollback")
    assert "serves another export" in log


def test_versions_roll_back_one_step_at_a_time(guarded: Path, new_drug: dict[str, Any],
                                               tmp_path: Path) -> None:
    from pillsnap.config import load_config

    cfg = load_config(None, [], env_file=None, environ={})
    photos = new_drug["photos"]
    entry = {k: v for k, v in new_drug["entry"].items() if k != "k_code"}
    pipe = OnnxPipeline.open(guarded)
    actions.add_drug(cfg, guarded, k_code="K-900001", photos=photos[:3], drug=entry, pipe=pipe)
    actions.add_drug(cfg, guarded, k_code="K-900002", photos=photos[1:], drug=entry, pipe=pipe)
    assert actions.listing(guarded)["version"] == 3
    first = actions.rollback(guarded)
    assert first == {"version": 4, "restored": 2, "enrolled": ["K-900001"]}
    second = actions.rollback(guarded)
    assert second == {"version": 5, "restored": 1, "enrolled": []}
    with pytest.raises(Exception, match="nothing to roll back"):
        actions.rollback(guarded)
    with pytest.raises(Exception, match="cannot be removed without retraining"):
        actions.remove_drug(guarded, read_recipe(guarded).k_codes[0])
    assert [p.name for p in sorted((guarded / "gallery_history").iterdir())] == [
        f"gallery.v{v}.npz" for v in (1, 2, 3, 4)]


def test_a_retrained_model_gets_the_enrolled_drugs_again_from_the_kept_photos(
        one_box_export: Callable[[Path], Path], new_drug: dict[str, Any],
        tmp_path: Path) -> None:
    """``--from-export OLD``: every drug OLD had enrolled is enrolled into the new export
    from the photos OLD kept, through the same checks (a new model's features differ, so
    the means are taken again, not copied)."""
    old = one_box_export(tmp_path / "old")
    assert main(["--export", str(old), "--k-code", new_drug["k_code"], "--drugs",
                 str(new_drug["drugs"]), *map(str, new_drug["photos"])]) == 0
    new = one_box_export(tmp_path / "new")
    assert main(["--export", str(new), "--from-export", str(old)]) == 0
    before, after = (Gallery.load(e / GALLERY_FILE) for e in (old, new))
    assert after.enrolled_codes == (new_drug["k_code"],)
    assert sorted(after.enrolled[0].digests) == sorted(before.enrolled[0].digests)
    assert after.enrolled[0].drug == before.enrolled[0].drug
    assert actions.listing(new)["enrolled"][0]["photos"] == 4
