"""The detector trainer: a tiny offline YOLO run leaves a usable run folder; gates and fitness.

    PYTHONPATH=python python -m pytest tests/train/test_detect.py -q
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import pillsnap
from pillsnap.child import Child
from pillsnap.config import load_config
from pillsnap.data.scan import scan
from pillsnap.data.synth import SynthSpec, generate
from pillsnap.errors import ConfigError, ModelError

TINY = SynthSpec(classes=4, train_per_class=1, val_per_class=1, combo_train=8, combo_val=3,
                 width=128, height=160, seed=3)

# Loaded through PYTHONPATH into the child process: any network use is recorded, then fails.
BLOCK_NETWORK = textwrap.dedent("""
    import os, socket

    _LOG = os.environ["PILLSNAP_TEST_NET_LOG"]

    def _refuse(what, target):
        with open(_LOG, "a", encoding="utf-8") as f:
            f.write(f"{what} {target!r}\\n")
        raise OSError(f"network blocked by the test: {what} {target!r}")

    _connect = socket.socket.connect

    def _guarded_connect(self, address):
        if self.family == getattr(socket, "AF_UNIX", None):
            return _connect(self, address)  # local IPC, not the network
        return _refuse("connect", address)

    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect
    socket.create_connection = lambda address, *a, **k: _refuse("create_connection", address)
    socket.getaddrinfo = lambda host, *a, **k: _refuse("getaddrinfo", host)
""")

LOAD_BEST = textwrap.dedent("""
    import sys
    from ultralytics import YOLO
    model = YOLO(sys.argv[1])
    result = model.predict(sys.argv[2], imgsz=64, verbose=False)[0]
    print("names", model.names, "boxes", len(result.boxes))
""")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("det") / "aihub"
    generate(root, TINY, workers=1)
    out = root.parent / "manifest"
    scan(root, out, workers=1)
    return root, out


def _child_env() -> dict[str, str]:
    """This process's environment, with this checkout's package first on the path."""
    env = dict(os.environ)
    package_parent = str(Path(pillsnap.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def _offline_env(tmp: Path) -> dict[str, str]:
    """A child environment: sockets blocked, an empty HOME, no ultralytics settings."""
    block = tmp / "netblock"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCK_NETWORK, encoding="utf-8")
    env = {k: v for k, v in _child_env().items()
           if not k.startswith("YOLO_") and k != "XDG_CONFIG_HOME"}
    env["PYTHONPATH"] = os.pathsep.join((str(block), env["PYTHONPATH"]))
    env["HOME"] = str(tmp / "home")
    env["PILLSNAP_TEST_NET_LOG"] = str(tmp / "net.log")
    env["MPLCONFIGDIR"] = str(tmp / "mpl")  # matplotlib's font cache, not the detector's
    (tmp / "home").mkdir()
    return env


def _det_config(tmp_path: Path, manifest: tuple[Path, Path], *, epochs: int,
                pretrained: bool = False, batch_size: int = 4,
                deterministic: bool = False) -> Path:
    """``tmp_path/cfg.yaml``: a tiny yolo11n run on the module's synthetic manifest."""
    root, manifest_dir = manifest
    cfg = {"active_feature_set": "advanced",
           "run": {"out_dir": str(tmp_path / "runs"), "name": "tiny",
                   "deterministic": deterministic},
           "data": {"root": str(root), "manifest_dir": str(manifest_dir)},
           "pack": {"out_dir": str(tmp_path / "pack"), "workers": 1},
           "models": {"detector": {"arch": "yolo11n", "image_size": 64,
                                   "pretrained": pretrained, "allow_random_init": True}},
           "logging": {"tensorboard": False},
           "train": {"task": "det", "det": {"epochs": epochs, "batch_size": batch_size,
                                            "workers": 0, "patience": 0}}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.mark.slow
def test_tiny_detector_run_offline(manifest: tuple[Path, Path], tmp_path: Path) -> None:
    _det_config(tmp_path, manifest, epochs=1, pretrained=True)  # no yolo11n.pt here
    env = _offline_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "pillsnap.train.detect", "--cfg", "cfg.yaml"],
                          capture_output=True, text=True, check=False, cwd=tmp_path, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "net.log").exists(), (tmp_path / "net.log").read_text()
    assert not any((tmp_path / "home").iterdir())  # ultralytics' settings live in the run
    assert {p.name for p in tmp_path.iterdir()} == {"cfg.yaml", "home", "mpl", "netblock",
                                                   "pack", "runs"}  # nothing in the cwd
    # no view under pack.out_dir yet: written from the manifest, with its decision line
    assert "decision: yolo view=" in done.stderr
    assert "fallback: detector weights=yolo11n.yaml" in done.stderr  # no yolo11n.pt: scratch

    det = tmp_path / "runs" / "tiny" / "det"
    for name in ("best.pt", "last.pt", "config.yaml", "train.log", "data.yaml"):
        assert (det / name).is_file(), name
    metrics = json.loads((det / "metrics.json").read_text())
    for key in ("map50", "map50_95", "precision", "recall"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["fitness"] == "map50" and metrics["device"] == "cpu"
    assert metrics["epochs_run"] == 1
    assert "detector: mAP@0.5" in (det / "train.log").read_text()

    # best.pt is an ordinary ultralytics checkpoint; plain ultralytics resolves two DNS names
    # at import unless YOLO_OFFLINE is set, so the loading child sets it as a user offline would
    image = next((tmp_path / "pack" / "yolo" / "images" / "val").glob("*.jpg"))
    env = {**env, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(tmp_path / "load")}
    loaded = subprocess.run([sys.executable, "-c", LOAD_BEST, str(det / "best.pt"), str(image)],
                            capture_output=True, text=True, check=False, cwd=tmp_path, env=env,
                            timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "names {0: 'pill'}" in loaded.stdout
    assert not (tmp_path / "net.log").exists(), (tmp_path / "net.log").read_text()


def test_detector_needs_the_advanced_feature_set(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pillsnap.train.detect",
                           "active_feature_set=mvp", "train.task=det"],
                          capture_output=True, text=True, check=False, cwd=tmp_path,
                          env=_child_env())
    assert done.returncode == 2
    assert "needs active_feature_set advanced" in done.stderr
    assert not (tmp_path / "runs").exists()

    from pillsnap.train.detect import train_detector

    cfg = load_config(None, ["active_feature_set=mvp", f"run.out_dir={tmp_path / 'r'}"],
                      env_file=None)
    with pytest.raises(ConfigError, match="advanced"):
        train_detector(cfg)
    assert not (tmp_path / "r").exists()


def test_fitness_is_map50_and_amp_check_stays_offline(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path))  # if this process imports it first
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    import torch
    from ultralytics.models.yolo.detect import DetectionTrainer

    from pillsnap.train import det_trainer

    trainer = det_trainer.Map50Trainer.__new__(det_trainer.Map50Trainer)
    scores = iter([(0.60, 0.50), (0.70, 0.40), (0.65, 0.45)])  # (mAP50, mAP50-95) per epoch

    def validate(self: DetectionTrainer) -> tuple[dict[str, float], float]:
        map50, map50_95 = next(scores)
        fitness = map50_95  # what ultralytics ranks by
        if self.best_fitness is None or self.best_fitness < fitness:
            self.best_fitness = fitness
        return {det_trainer.MAP50: map50, det_trainer.MAP50_95: map50_95}, fitness

    monkeypatch.setattr(DetectionTrainer, "validate", validate)
    trainer.best_fitness = None
    assert trainer.validate()[1] == 0.60
    assert trainer.validate()[1] == 0.70 and trainer.best_fitness == 0.70
    assert trainer.validate()[1] == 0.65 and trainer.best_fitness == 0.70  # by mAP50, not -95

    seen = []
    monkeypatch.setattr(DetectionTrainer, "_setup_train",
                        lambda self: seen.append(det_trainer.trainer_module.check_amp(tiny)))
    tiny = torch.nn.Linear(2, 2)
    trainer._setup_train()
    assert seen == [True]  # the replacement answered; ultralytics' downloading check did not run


def test_device_and_amp_decisions(caplog: pytest.LogCaptureFixture) -> None:
    from pillsnap.train.detect import _device

    cfg = load_config(None, ["active_feature_set=advanced"], env_file=None)
    caplog.set_level("INFO")
    assert _device(cfg, cuda=False) == ("cpu", False)
    assert _device(cfg, cuda=True) == ("0", True)
    cfg.train.amp = False
    assert _device(cfg, cuda=True) == ("0", False)
    decisions = [r.getMessage() for r in caplog.records if "decision:" in r.getMessage()]
    assert "decision: device=cpu (no CUDA device)" in decisions
    assert any(m.startswith("decision: amp=False (train.amp=false") for m in decisions)


def test_local_weights_are_used_only_when_present(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import ultralytics

    from pillsnap.train.detect import _model

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ultralytics, "YOLO", lambda source: source)  # records what it loads
    cfg = load_config(None, ["active_feature_set=advanced", "models.detector.arch=yolo11n"],
                      env_file=None)
    with pytest.raises(ModelError, match=r"no yolo11n\.pt here.*allow_random_init=true"):
        _model(cfg)  # pretrained, but no local file, and random init not allowed
    cfg.models.detector.allow_random_init = True
    assert _model(cfg) == ("yolo11n.yaml", False)  # allowed: from scratch
    (tmp_path / "yolo11n.pt").write_bytes(b"weights")
    assert _model(cfg) == ("yolo11n.pt", True)
    cfg.models.detector.pretrained = False
    assert _model(cfg) == ("yolo11n.yaml", False)
    cfg.models.detector.pretrained = True
    cfg.models.detector.arch = str(tmp_path / "mine.pt")
    (tmp_path / "mine.pt").write_bytes(b"weights")
    assert _model(cfg) == (str(tmp_path / "mine.pt"), True)
    cfg.models.detector.arch = "/weights/yolo11m.pt"  # absent: ultralytics' own yolo11m.yaml
    assert _model(cfg) == ("yolo11m.yaml", False)
    cfg.models.detector.arch = "models/custom.yaml"  # the user's own architecture file
    assert _model(cfg) == ("models/custom.yaml", False)


def test_rerun_keeps_the_previous_ultralytics_folder(tmp_path: Path) -> None:
    from pillsnap.train.detect import _set_aside_previous

    folder = tmp_path / "ultralytics"
    for run in ("first", "second"):
        folder.mkdir()
        (folder / "results.csv").write_text(run)
        _set_aside_previous(folder)
        assert not folder.exists()
    assert (tmp_path / "ultralytics.prev" / "results.csv").read_text() == "second"



# ultralytics' progress line for epoch 2 of 3 once a batch of it is done (stdout, also when
# it is not a terminal): "        2/3   0G   0.0004   0.1718   0.0002   5   64: 50% ━━ 2/4 ..."
EPOCH_2_UNDER_WAY = r"\b2/3\s+\S+(\s+\S+){3}\s+\d+\s+64: \d+% \S+ [1-9]\d*/4\b"
RESULT_KEYS = ("train/box_loss", "train/cls_loss", "train/dfl_loss", "lr/pg0")


def _results(det_dir: Path) -> list[dict[str, str]]:
    with (det_dir / "ultralytics" / "results.csv").open(encoding="utf-8") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_detector_killed_mid_epoch_resumes_from_its_last_finished_epoch(
        manifest: tuple[Path, Path], tmp_path: Path) -> None:
    """What ``train.resume=last`` gives the detector, as ultralytics 8.4 does it: the run
    continues after its last finished epoch (the killed epoch is trained again from its first
    batch), each epoch once, with the same epoch count and schedule; but not the steps an
    uninterrupted run takes (README, "The detector": no random states, a re-seeded shuffle,
    the EMA weights in place of the live ones)."""
    env = {**os.environ, **_child_env(), "YOLO_OFFLINE": "1"}
    command = [sys.executable, "-m", "pillsnap.train.detect", "--cfg", "cfg.yaml"]
    for name in ("whole", "killed"):  # 8 combination photos in batches of 2: 4 an epoch
        (tmp_path / name).mkdir()
        _det_config(tmp_path / name, manifest, epochs=3, batch_size=2, deterministic=True)
    whole = subprocess.run(command, capture_output=True, text=True, check=False,
                           cwd=tmp_path / "whole", env=env, timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]

    det = tmp_path / "killed" / "runs" / "tiny" / "det"
    with Child.start(command, name="the detector", log=tmp_path / "killed.out",
                     cwd=tmp_path / "killed", env=env) as killed:
        killed.wait_for_output(EPOCH_2_UNDER_WAY, timeout_s=240, interval_s=0.01)
        killed.process.send_signal(signal.SIGKILL)  # inside epoch 2, a batch or more in
        killed.process.wait()
    assert [r["epoch"] for r in _results(det)] == ["1"]  # epoch 2 never finished
    saved = torch.load(det / "ultralytics" / "weights" / "last.pt", map_location="cpu",
                       weights_only=False)
    assert saved["epoch"] == 0 and saved["optimizer"] is not None

    resumed = subprocess.run([*command, "train.resume=last"], capture_output=True, text=True,
                             check=False, cwd=tmp_path / "killed", env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "(continuing after epoch 1)" in resumed.stderr
    after, reference = _results(det), _results(tmp_path / "whole" / "runs" / "tiny" / "det")
    assert [r["epoch"] for r in after] == ["1", "2", "3"]  # continued, each epoch once
    assert json.loads((det / "metrics.json").read_text())["epochs_run"] == 3

    def losses(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
        return [tuple(r[k] for k in RESULT_KEYS) for r in rows]

    # Up to the kill the run is the uninterrupted one (deterministic mode); the learning rate
    # of the resumed epochs is too, but their losses are not: ultralytics restores neither
    # the random states nor the loader's shuffle, and trains on from the EMA weights. If
    # this starts to fail, ultralytics' resume became exact: update the README.
    assert losses(after[:1]) == losses(reference[:1])
    assert [r["lr/pg0"] for r in after] == [r["lr/pg0"] for r in reference]
    assert losses(after[1:]) != losses(reference[1:])

    # the finished run has no optimizer state left: resuming it is refused, clearly
    again = subprocess.run([*command, "train.resume=last"], capture_output=True, text=True,
                           check=False, cwd=tmp_path / "killed", env=env, timeout=120)
    assert again.returncode == 2
    assert "from a finished run" in again.stderr


def test_resume_of_a_missing_or_torn_checkpoint_is_refused(tmp_path: Path) -> None:
    from pillsnap.errors import DataError
    from pillsnap.train.detect import resume_checkpoint

    cfg = load_config(None, ["active_feature_set=advanced", "train.resume=last"], env_file=None)
    with pytest.raises(DataError, match="no detector checkpoint"):
        resume_checkpoint(cfg, tmp_path)
    torn = tmp_path / "ultralytics" / "weights" / "last.pt"
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(DataError, match="cannot be read"):
        resume_checkpoint(cfg, tmp_path)
    cfg.train.resume = None
    assert resume_checkpoint(cfg, tmp_path) is None
