"""Shared fixtures: the repository root, a clean working directory per test, and (built once,
only when a test asks) a tiny trained classifier + detector, their export folder, Triton
model repositories written from it, and API servers over both backends."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from api_helpers import API_KEYS, ServerProcess
from pillsnap.child import Child, NotReady
from pillsnap.config import PillsnapConfig, load_config
from pillsnap.data.synth import SynthSpec
from pillsnap.serve import API_READY_LINE
from pillsnap.serve.triton_server import TritonLaunch, TritonServer, free_ports

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory with none of the serving variables set."""
    monkeypatch.chdir(tmp_path)
    for name in ("API_KEY", "LOG_LEVEL", "CORS_ALLOW_ORIGINS", "MODEL_PATH", "TRITON_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


# A tiny trained classifier and detector from synthetic data: the classifier trains one
# epoch with the real trainer (timm ``test_efficientnet``, 32 px), the detector three epochs
# of ``yolo11n.yaml`` at 64 px: enough for BatchNorm statistics and for scores above
# ultralytics' validation threshold, so parity checks mean something. About 15 s on 2 cores.

EXPORT_DATA = SynthSpec(classes=4, train_per_class=8, val_per_class=4, combo_train=8,
                        combo_val=3, width=128, height=160, seed=11)


def tiny_config(base: Path, *extra: str) -> PillsnapConfig:
    return load_config(None, [
        "active_feature_set=advanced", f"data.root={base / 'aihub'}",
        f"data.manifest_dir={base / 'manifest'}", f"pack.out_dir={base / 'packs'}",
        f"run.out_dir={base / 'runs'}", "run.name=t", "pack.short_side=40", "pack.workers=1",
        "models.classifier.arch=test_efficientnet", "models.classifier.image_size=32",
        "models.classifier.pretrained=false", "models.detector.arch=yolo11n",
        "models.detector.image_size=64", "models.detector.pretrained=false",
        "train.epochs=1", "train.batch_size=8", "train.compile=none",
        "train.auto_batch.enabled=false", "train.ema.warmup_steps=2", "train.det.epochs=3",
        "train.det.batch_size=4", "train.det.workers=0", "dataloader.threads=1",
        "dataloader.autotune=false", "cache.policy=none", "logging.tensorboard=false",
        "logging.file=false", "export.parity.samples=16", *extra], env_file=None, environ={})


@pytest.fixture(scope="session")
def export_cfg() -> Callable[..., PillsnapConfig]:
    """``export_cfg(base, "export.parity.samples=4", ...)``: the tiny run's config."""
    return tiny_config


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Dataset, manifest, packs, the classifier's best.pt and the detector's det/best.pt."""
    from pillsnap.data.pack import build_pack
    from pillsnap.data.scan import scan
    from pillsnap.data.synth import generate
    from pillsnap.train.classifier import train_classifier
    from pillsnap.train.detect import train_detector

    base = tmp_path_factory.mktemp("export")
    generate(base / "aihub", EXPORT_DATA, workers=1)
    scan(base / "aihub", base / "manifest", workers=1)
    for split in ("train", "val"):
        build_pack(base / "manifest", base / "aihub", base / "packs" / f"{split}.pack",
                   split=split, short_side=40, region="pill", workers=1)
    cfg = tiny_config(base)
    train_classifier(cfg)
    det = train_detector(cfg)
    return {"base": base, "ckpt": base / "runs" / "t" / "best.pt", "det_ckpt": Path(det["best"]),
            "manifest": base / "manifest", "packs": base / "packs"}


@pytest.fixture(scope="session")
def exported(trained: dict[str, Path]) -> Path:
    """The export folder of ``trained`` (classifier + detector), as the CLI writes it."""
    from pillsnap.export.run import export_all

    out = trained["base"] / "export"
    export_all(tiny_config(trained["base"]), trained["ckpt"], out, det_ckpt=trained["det_ckpt"])
    return out


@pytest.fixture(scope="session")
def native_module() -> object:
    """``pillsnap._native`` (the Rust extension)."""
    from pillsnap.native import _native

    return _native


# ------------------------------------------------------------------------------ Triton
# Two repositories, because the three-epoch detector scores every photo alike (about 0.012
# for its best box): at its exported threshold (0.25) it finds no pill anywhere (``zero``);
# with the threshold lowered to 0.0005 in a copy of the export it finds 6 boxes everywhere
# (``many``: more crops than ``triton.classifier_max_batch=2``, so crop_classify calls the
# classifier in chunks). The in-process OnnxPipeline on the same export folder is the
# reference. Repositories refuse photos over 100,000 pixels (the test photos have 20,480).

TRITON_MAX_BATCH = 2
TRITON_MAX_PIXELS = 100_000


def write_repo(export: Path, out: Path) -> Path:
    from pillsnap.export.__main__ import main as export_main

    code = export_main(["--triton", "--from", str(export), "--out", str(out),
                        f"triton.classifier_max_batch={TRITON_MAX_BATCH}",
                        "triton.cpu_threads=1", f"serve.max_pixels={TRITON_MAX_PIXELS}"])
    assert code == 0
    return out


def launch(repository: Path, **extra: object) -> TritonLaunch:
    return TritonLaunch(repository, free_ports(), startup_timeout_s=90.0, **extra)


@pytest.fixture(scope="session")
def many_export(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the export whose detector reports 6 boxes on every photo."""
    from dataclasses import replace

    from pillsnap.export.metadata import write_recipe
    from pillsnap.infer.bundle import read_recipe

    folder = tmp_path_factory.mktemp("many") / "export"
    shutil.copytree(exported, folder)
    recipe = read_recipe(folder)
    assert recipe.detector is not None
    write_recipe(folder, recipe.replace(detector=replace(recipe.detector, conf=0.0005)))
    return folder


# A drug the tiny model never saw, from another synthetic draw: photos and drug-table entry.
NEW_DRUG = SynthSpec(classes=1, train_per_class=4, val_per_class=1, combo_train=0, combo_val=0,
                     width=128, height=160, seed=99)


@pytest.fixture(scope="session")
def new_drug(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Photos (4 training, 1 validation), manifest and drug-table entry of a drug the test
    model never saw."""
    from pillsnap.data.scan import scan
    from pillsnap.data.synth import generate

    base = tmp_path_factory.mktemp("new-drug")
    generate(base / "aihub", NEW_DRUG, workers=1)
    scan(base / "aihub", base / "manifest", workers=1)
    drugs = json.loads((base / "manifest" / "drugs.json").read_text(encoding="utf-8"))
    [k_code] = drugs
    return {"k_code": k_code, "photos": sorted((base / "aihub").rglob("TS_*/*/*.png")),
            "val": sorted((base / "aihub").rglob("VS_*/*/*.png")),
            "drugs": base / "manifest" / "drugs.json", "manifest": base / "manifest",
            "root": base / "aihub", "entry": drugs[k_code]}


@pytest.fixture
def one_box_export(many_export: Path, new_drug: dict[str, Any]) -> Callable[[Path], Path]:
    """``one_box_export(folder)``: a copy of the export whose detector keeps its one best
    box on every photo (the three-epoch detector scores everything alike, under 0.25: at
    0.0005 it boxes 6 places), and whose open-set threshold the new drug's first training
    photo misses by a hair (the tiny model's scores mean little: tests check mechanisms)."""
    from dataclasses import replace

    from pillsnap.export.metadata import write_recipe
    from pillsnap.infer.bundle import read_recipe
    from pillsnap.infer.pipeline import OnnxPipeline

    def make(folder: Path) -> Path:
        shutil.copytree(many_export, folder)
        recipe = read_recipe(folder)
        assert recipe.detector is not None and recipe.open_set is not None
        recipe = recipe.replace(detector=replace(recipe.detector, max_det=1))
        write_recipe(folder, recipe)
        score = OnnxPipeline.open(folder).predict(
            new_drug["photos"][0].read_bytes())["pills"][0]["open_set_score"]
        assert new_drug["k_code"] not in recipe.k_codes
        write_recipe(folder, recipe.replace(open_set=replace(recipe.open_set,
                                                             threshold=score + 1)))
        return folder

    return make


@pytest.fixture(scope="session")
def zero_repo(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repo(exported, tmp_path_factory.mktemp("zero") / "triton_models")


@pytest.fixture(scope="session")
def many_repo(many_export: Path) -> Path:
    return write_repo(many_export, many_export.parent / "triton_models")


@pytest.fixture(scope="session")
def triton_launch() -> Callable[..., TritonLaunch]:
    """``triton_launch(repository, **extra)``: a launch on free ports (tests start servers
    with it)."""
    return launch


@pytest.fixture(scope="session")
def classifier_max_batch() -> int:
    return TRITON_MAX_BATCH


# ------------------------------------------------------------------------------ API servers


@pytest.fixture(scope="session")
def api_server(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``python -m pillsnap.serve api`` in a child process (real HTTP on a free loopback port),
    embedded backend over ``exported``, two keys, 256 KiB / 2 MP / 3-image limits.

    A child, not a thread: the test process has ultralytics imported (training fixtures),
    which patches ``PIL.Image.open``; a server never does.
    """
    with api_process(tmp_path_factory.mktemp("api"), "--model-path", str(exported)) as server:
        yield server


@pytest.fixture(scope="session")
def triton_api_server(many_repo: Path,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The same API server with the Triton backend, in front of a real tritonserver (the
    bundled binary, CPU configs) serving ``many_repo``: one Triton for every module that
    asks. Pixel limit: the repository's 100,000 (Triton decodes; the proxy never does)."""
    with TritonServer(launch(many_repo)) as triton, \
            api_process(tmp_path_factory.mktemp("api-triton"), "--backend", "triton",
                        "--triton-url", triton.url.removeprefix("http://")) as server:
        yield server


@pytest.fixture(params=["embedded", "triton"])
def any_api_server(request: pytest.FixtureRequest) -> ServerProcess:
    """``api_server``, then ``triton_api_server``: a test that takes it runs on both."""
    name = "api_server" if request.param == "embedded" else "triton_api_server"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def api_launcher() -> Callable[..., Any]:
    """``with api_launcher(work_dir, "--model-path", str(export)) as server:`` a test's own
    API server, configured as ``api_server`` is."""
    return api_process


@contextmanager
def api_process(work: Path, *args: str) -> Iterator[ServerProcess]:
    import httpx

    log = work / "server.log"
    env = {**os.environ, "API_KEY": ",".join(API_KEYS), "PYTHONUNBUFFERED": "1"}
    for name in ("CORS_ALLOW_ORIGINS", "MODEL_PATH", "TRITON_URL", "LOG_LEVEL"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pillsnap.serve", "api", "--port", "0", *args,
               "--cfg", str(REPO / "config.yaml"),
               "serve.max_upload_bytes=262144", "serve.max_pixels=2000000",
               "serve.max_batch_images=3", "serve.request_timeout_s=20"]
    with Child.start(command, name="the API server", log=log, cwd=work, env=env) as server:
        try:
            url = server.wait_for_output(API_READY_LINE, timeout_s=60)[1]
        except NotReady:
            raise RuntimeError(f"the API server did not start:\n{server.log_text()}") from None
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200
        yield ServerProcess(url, server.process, log)


@pytest.fixture(scope="session")
def pill_photos(trained: dict[str, Path]) -> dict[str, Path]:
    """One single-pill photo and one combination photo of the tiny dataset."""
    base = trained["base"] / "aihub"
    single = sorted(base.glob("1.Training/원천데이터/TS_*_단일/*/*.png"))
    combo = sorted(base.glob("1.Training/원천데이터/TS_*_조합/*/*.png"))
    return {"single": single[0], "combo": combo[0]}
