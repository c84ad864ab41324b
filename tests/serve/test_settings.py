"""Settings precedence (CLI > config.yaml > environment > .env) and start-up refusals."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pillsnap.errors import ConfigError
from pillsnap.serve.app import create_app
from pillsnap.serve.settings import DEFAULT_CORS, Settings, load_settings

KEY_A, KEY_B = "a" * 20, "b" * 20


def test_precedence_cli_over_yaml_over_env_over_dotenv(in_tmp: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (in_tmp / ".env").write_text(f"API_KEY={KEY_A}, {KEY_B}\nTRITON_URL=dotenv:8000\n"
                                 "MODEL_PATH=from-dotenv\nLOG_LEVEL=debug\n")
    (in_tmp / "config.yaml").write_text("serve:\n  top_k: 7\n  model_path: from-yaml\n"
                                        "pipeline:\n  mode: combo\n")
    monkeypatch.setenv("TRITON_URL", "environ:8000")
    settings = load_settings(Path("config.yaml"), ["serve.top_k=9"], env_file=Path(".env"),
                             port=0)
    assert settings.api_keys == [KEY_A, KEY_B]          # .env, comma-separated
    assert settings.triton_url == "environ:8000"        # environment over .env
    assert settings.model_path == Path("from-yaml")     # config.yaml over .env
    assert settings.top_k == 9 and settings.port == 0   # CLI over config.yaml
    assert settings.pipeline == "combo" and settings.log_level == "DEBUG"
    assert settings.backend_kind == "triton"            # auto + a TRITON_URL
    assert settings.cors_allow_origins == DEFAULT_CORS
    assert KEY_A not in repr(settings)


def test_bad_settings_are_refused(in_tmp: Path) -> None:
    with pytest.raises(ValidationError, match="shorter than 16"):
        Settings(api_keys=["short"])
    (in_tmp / "config.yaml").write_text("serve:\n  max_batch_image: 3\n")
    with pytest.raises(ConfigError, match="max_batch_images"):
        load_settings(Path("config.yaml"), env_file=None)


def test_no_key_refuses_to_start_unless_insecure_dev(in_tmp: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match="no API key"):
        create_app(Settings(backend="triton", triton_url="127.0.0.1:1"))
    with caplog.at_level(logging.WARNING):
        create_app(Settings(backend="triton", triton_url="127.0.0.1:1",
                            insecure_dev=True))
    assert "INSECURE DEVELOPMENT MODE" in caplog.text


def test_cli_without_a_key_exits_with_the_reason(in_tmp: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "pillsnap.serve", "api", "--env-file",
                          "none.env"], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert "no API key configured" in run.stderr and "--insecure-dev" in run.stderr
