"""The config a user writes: defaults, precedence, and the errors that tell them what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pillsnap.config import PillsnapConfig, load_config, save_config
from pillsnap.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file(in_tmp: Path) -> None:
    cfg = load_config()
    assert cfg.models.classifier.image_size == 384
    assert cfg.models.detector.image_size == 640
    assert cfg.export.opset == 17
    assert cfg.targets.measurement.warmup_runs == 20
    assert cfg.targets.measurement.runs == 200
    assert cfg.data.root == Path("data/aihub")  # relative: works on any machine


def test_config_yaml_holds_exactly_the_schema_defaults(repo: Path) -> None:
    in_file = yaml.safe_load((repo / "config.yaml").read_text(encoding="utf-8"))
    assert in_file == PillsnapConfig().model_dump(mode="json")


def test_workstation_profile(repo: Path, in_tmp: Path) -> None:
    cfg = load_config(repo / "configs" / "rtx5080-wsl.yaml")
    assert cfg.data.root == Path("/mnt/data/pillsnap_dataset")
    assert cfg.run.out_dir / cfg.run.name == Path("/mnt/data/exp/exp01")
    assert cfg.dataloader.threads == 16
    assert cfg.cache.policy == "hotset" and cfg.cache.hotset_gb > 0


def test_reads_config_yaml_in_working_directory(in_tmp: Path) -> None:
    write(in_tmp / "config.yaml", "train:\n  epochs: 3\n")
    assert load_config().train.epochs == 3


def test_precedence_cli_over_yaml_over_env(in_tmp: Path) -> None:
    env = write(in_tmp / ".env", "TRITON_URL=http://env:8100\nAPI_KEY=k1, k2\nLOG_LEVEL=DEBUG\n")
    cfg_file = write(in_tmp / "c.yaml", "serve:\n  triton_url: http://yaml:8100\n")
    cfg = load_config(cfg_file, env_file=env, environ={})
    assert cfg.serve.triton_url == "http://yaml:8100"  # yaml beats .env
    assert cfg.serve.api_keys == ["k1", "k2"]  # .env fills what yaml leaves empty
    assert cfg.logging.level == "DEBUG"
    cfg = load_config(cfg_file, ["serve.triton_url=http://cli:8100"], env_file=env, environ={})
    assert cfg.serve.triton_url == "http://cli:8100"  # CLI beats both


def test_process_environment_beats_env_file(in_tmp: Path) -> None:
    env = write(in_tmp / ".env", "API_KEY=from-file\n")
    cfg = load_config(None, env_file=env, environ={"API_KEY": "from-env"})
    assert cfg.serve.api_keys == ["from-env"]


def test_overrides_parse_yaml_values(in_tmp: Path) -> None:
    cfg = load_config(None, ["train.lr=1e-4", "dataloader.threads=12",
                             "dataloader.autotune_candidates=[4, 8]", "train.clip_grad_norm=null"])
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.dataloader.threads == 12
    assert cfg.dataloader.autotune_candidates == [4, 8]
    assert cfg.train.clip_grad_norm is None


def test_unknown_key_in_file_names_the_closest_valid_key(in_tmp: Path) -> None:
    cfg_file = write(in_tmp / "c.yaml", "train:\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file)
    message = str(err.value)
    assert "train.lerning_rate" in message and "c.yaml" in message
    assert "batch_size" in message and "lr" in message  # the valid keys are listed


def test_unknown_section_and_override(in_tmp: Path) -> None:
    with pytest.raises(ConfigError, match=r"Did you mean 'train\.epochs'"):
        load_config(None, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        load_config(None, ["trian.epochs=3"])
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_config(None, ["train.epochs"])


def test_bad_choice_lists_the_valid_ones(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.compile=fast"])
    message = str(err.value)
    assert "train.compile" in message
    for choice in ("none", "default", "reduce-overhead", "max-autotune"):
        assert choice in message


def test_triton_restart_no_means_never(in_tmp: Path) -> None:
    """Unquoted ``no`` (docker's spelling) is false to YAML; it still means never."""
    write(in_tmp / "config.yaml", "triton:\n  restart: no\n")
    assert load_config().triton.restart == "never"
    assert load_config(None, ["triton.restart=no"]).triton.restart == "never"
    with pytest.raises(ConfigError, match="'never' or 'on-failure'"):
        load_config(None, ["triton.restart=always"])


def test_io_binding_on_and_off_unquoted(in_tmp: Path) -> None:
    """YAML 1.1 reads unquoted on/off as booleans; they still mean the words."""
    write(in_tmp / "config.yaml", "serve:\n  io_binding: on\n")
    assert load_config().serve.io_binding == "on"
    assert load_config(None, ["serve.io_binding=off"]).serve.io_binding == "off"
    with pytest.raises(ConfigError, match="'auto', 'on' or 'off'"):
        load_config(None, ["serve.io_binding=pinned"])


def test_bad_value_is_explained(in_tmp: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.lr: Input should be greater than 0"):
        load_config(None, ["train.lr=-1"])


@pytest.mark.parametrize("value", [r"C:\Users\pill\data", "D:/datasets/aihub"])
def test_windows_path_is_refused_with_the_wsl_spelling(in_tmp: Path, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"data.root={value}"])
    assert "Windows path" in str(err.value)
    assert "/mnt/" in str(err.value)


def test_windows_path_in_yaml_file(in_tmp: Path) -> None:
    cfg_file = write(in_tmp / "c.yaml", "pack:\n  out_dir: 'E:\\packs'\n")
    with pytest.raises(ConfigError, match="/mnt/e/packs"):
        load_config(cfg_file)


def test_broken_yaml_and_missing_file(in_tmp: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(in_tmp / "c.yaml", "train: [unclosed\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(in_tmp / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(in_tmp / "list.yaml", "- 1\n- 2\n"))


def test_feature_set_refuses_features_outside_it(in_tmp: Path) -> None:
    with pytest.raises(ConfigError, match=r"pipeline\.mode=combo needs active_feature_set"):
        load_config(None, ["active_feature_set=mvp", "pipeline.mode=combo"])
    with pytest.raises(ConfigError, match=r"serve\.backend=triton"):
        load_config(None, ["active_feature_set=advanced", "serve.backend=triton"])
    assert load_config(None, ["pipeline.mode=combo"]).pipeline.mode == "combo"


def test_saved_config_reloads_and_hides_api_keys(in_tmp: Path) -> None:
    cfg = load_config(None, ["train.epochs=7"], environ={"API_KEY": "secret-key"})
    saved = save_config(cfg, in_tmp / "run" / "config.yaml")
    text = saved.read_text(encoding="utf-8")
    assert "secret-key" not in text
    again = load_config(saved, environ={})
    assert again.train.epochs == 7


def test_cli_reports_errors_without_a_traceback(in_tmp: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pillsnap.config", "check", "train.lrr=1"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "Did you mean 'train.lr'" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "pillsnap.config", "show", "train.epochs=9"],
                          capture_output=True, text=True, check=True)
    assert yaml.safe_load(done.stdout)["train"]["epochs"] == 9


def test_crop_scale_must_be_a_fraction_range(in_tmp: Path) -> None:
    assert load_config(None, ["train.crop_scale=[0.35, 1.0]"]).train.crop_scale == (0.35, 1.0)
    with pytest.raises(ConfigError, match="crop_scale"):
        load_config(None, ["train.crop_scale=[0.9, 0.5]"])
