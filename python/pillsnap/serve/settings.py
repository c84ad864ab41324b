"""The server's settings: the resolved config's ``serve`` section, frozen for the app's life.

    settings = load_settings(Path("config.yaml"), ["serve.port=9000"], env_file=Path(".env"))

The layers and their order are ``pillsnap.config.load_config``'s, the one place that reads
them: CLI overrides > config.yaml > process environment > ``.env`` > defaults, where the
environment names the README's API section lists (API_KEY, CORS_ALLOW_ORIGINS, MODEL_PATH,
TRITON_URL, LOG_LEVEL) fill what config.yaml leaves empty. The server's own flags
(``--port``, ``--insecure-dev``...) win over all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pillsnap.config.loader import load_config
from pillsnap.config.schema import Device, IoBinding, ServeConfig

DEFAULT_CORS = ["http://localhost:3000", "https://pillsnap.co.kr", "https://api.pillsnap.co.kr"]
_SERVE = ServeConfig.model_fields


class Settings(BaseModel):
    """Everything the app reads at start-up; built once, never changed while serving."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["auto", "embedded", "triton"] = "auto"
    pipeline: Literal["single", "combo"] = "single"  # when a request names none (pipeline.mode)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: list[str] = Field(default_factory=list, repr=False)
    cors_allow_origins: list[str] = Field(default_factory=lambda: list(DEFAULT_CORS))
    model_path: Path | None = None
    triton_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # no keys and this flag: every endpoint is open (logged loudly at start-up); never in prod
    insecure_dev: bool = False
    # The limits are the config schema's own fields (defaults and bounds in one place).
    health_public: bool = _SERVE["health_public"]
    top_k: int = _SERVE["top_k"]
    low_confidence: float = _SERVE["low_confidence"]
    max_upload_bytes: int = _SERVE["max_upload_bytes"]
    max_pixels: int = _SERVE["max_pixels"]
    max_batch_images: int = _SERVE["max_batch_images"]
    request_timeout_s: float = _SERVE["request_timeout_s"]
    ready_timeout_s: float = _SERVE["ready_timeout_s"]
    threads: int = _SERVE["threads"]
    device: Device = _SERVE["device"]
    io_binding: IoBinding = _SERVE["io_binding"]
    max_concurrent: int = _SERVE["max_concurrent"]
    max_queue: int = _SERVE["max_queue"]

    @field_validator("api_keys")
    @classmethod
    def _keys_long_enough(cls, keys: list[str]) -> list[str]:
        short = [k for k in keys if len(k) < 16]
        if short:
            raise ValueError(f"{len(short)} API key(s) shorter than 16 characters; generate "
                             "one with: python -c 'import secrets; print(secrets.token_urlsafe())'")
        return keys

    @property
    def backend_kind(self) -> Literal["embedded", "triton"]:
        """``auto`` resolved: Triton when a TRITON_URL is set, else in-process ONNX Runtime."""
        if self.backend == "auto":
            return "triton" if self.triton_url else "embedded"
        return self.backend

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)


def load_settings(cfg: Path | None = None, overrides: Iterable[str] = (), *,
                  env_file: Path | None = Path(".env"), **explicit: Any) -> Settings:
    """Settings from config.yaml (+ dotted overrides), the environment and ``env_file``.

    ``explicit`` keyword values (CLI flags such as ``insecure_dev=True``) win over all.
    """
    config = load_config(cfg, overrides, env_file=env_file)
    values = {k: v for k, v in config.serve.model_dump().items() if v is not None}
    values["pipeline"] = config.pipeline.mode
    if config.logging.level:
        values["log_level"] = config.logging.level
    values.update({k: v for k, v in explicit.items() if v is not None})
    return Settings(**values)
