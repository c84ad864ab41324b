"""The server's settings: config.yaml's ``serve`` section over the environment and ``.env``.

    settings = load_settings(Path("config.yaml"), ["serve.port=9000"], env_file=Path(".env"))

Precedence, as everywhere in PillSnap: CLI overrides > config.yaml > process environment >
``.env`` > defaults. The YAML and CLI layers are resolved by ``pillsnap.config`` (validated,
unknown keys rejected); pydantic-settings reads the environment names the README's API section lists
(API_KEY, CORS_ALLOW_ORIGINS, MODEL_PATH, TRITON_URL, LOG_LEVEL) for what those leave unset.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pillsnap.config.loader import load_config
from pillsnap.config.schema import ServeConfig

DEFAULT_CORS = ["http://localhost:3000", "https://pillsnap.co.kr", "https://api.pillsnap.co.kr"]
CommaList = Annotated[list[str], NoDecode]
_SERVE = ServeConfig.model_fields


def _env(name: str, field: str, **default: Any) -> Any:
    """A field that also reads the environment name the README gives it (API_KEY, ...)."""
    return Field(validation_alias=AliasChoices(field, name), **default)


class Settings(BaseSettings):
    """Everything the app reads at start-up; built once, never changed while serving."""

    model_config = SettingsConfigDict(env_prefix="PILLSNAP_SERVE_", env_file=None,
                                      extra="forbid", frozen=True)

    backend: Literal["auto", "embedded", "triton"] = "auto"
    pipeline: Literal["single", "combo"] = "single"  # when a request names none (pipeline.mode)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: CommaList = _env("API_KEY", "api_keys", default_factory=list, repr=False)
    cors_allow_origins: CommaList = _env("CORS_ALLOW_ORIGINS", "cors_allow_origins",
                                         default_factory=lambda: list(DEFAULT_CORS))
    model_path: Path | None = _env("MODEL_PATH", "model_path", default=None)
    triton_url: str | None = _env("TRITON_URL", "triton_url", default=None)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _env("LOG_LEVEL", "log_level",
                                                                   default="INFO")
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
    threads: int = _SERVE["threads"]

    @field_validator("api_keys", "cors_allow_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_long_enough(cls, keys: list[str]) -> list[str]:
        short = [k for k in keys if len(k) < 16]
        if short:
            raise ValueError(f"{len(short)} API key(s) shorter than 16 characters; generate "
                             "one with: python -c 'import secrets; print(secrets.token_urlsafe())'")
        return keys

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

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
    config = load_config(cfg, overrides, env_file=None, environ={})
    values = {k: v for k, v in config.serve.model_dump().items() if v is not None}
    values["pipeline"] = config.pipeline.mode
    if config.logging.level:
        values["log_level"] = config.logging.level
    values.update({k: v for k, v in explicit.items() if v is not None})
    env = env_file if env_file is not None and Path(env_file).is_file() else None
    return Settings(_env_file=env, **values)
