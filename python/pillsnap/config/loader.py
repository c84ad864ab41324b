"""Build the resolved config from its layers, the one place that reads and orders them.

    cfg = load_config("config.yaml", ["train.lr=1e-4"], env_file=".env")

From lowest to highest: defaults < ``.env`` < process environment < config.yaml < CLI
(dotted keys: ``train.lr=1e-4``). The two environment layers hold only the serving
settings the README's API section names (API_KEY, LOG_LEVEL, CORS_ALLOW_ORIGINS,
MODEL_PATH, TRITON_URL) and fill them only where config.yaml leaves them empty (null), so
secrets can stay out of config files. Training, export and the server
(``pillsnap.serve.settings``) all resolve their settings here.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError

from pillsnap.config.paths import windows_path_hint
from pillsnap.config.schema import PillsnapConfig
from pillsnap.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("config.yaml")

# Environment variable -> (dotted key, is a comma-separated list)
ENV_KEYS: dict[str, tuple[str, bool]] = {
    "API_KEY": ("serve.api_keys", True),
    "LOG_LEVEL": ("logging.level", False),
    "CORS_ALLOW_ORIGINS": ("serve.cors_allow_origins", True),
    "MODEL_PATH": ("serve.model_path", False),
    "TRITON_URL": ("serve.triton_url", False),
}


def load_config(
    path: Path | str | None = None,
    overrides: Iterable[str] = (),
    env_file: Path | str | None = ".env",
    environ: Mapping[str, str] | None = None,
) -> PillsnapConfig:
    """Resolve and validate the config; raise ConfigError with the valid options on error.

    ``path=None`` reads ``./config.yaml`` when it exists, else uses the built-in defaults.
    """
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    if path is not None:
        raw = read_yaml(Path(path))
        source = str(path)
        check_keys(raw, PillsnapConfig, source=source)
    _apply_env(raw, _environment(env_file, environ))
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    try:
        cfg = PillsnapConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    return cfg


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad syntax is a ConfigError naming the file."""
    hint = windows_path_hint(str(path))
    if hint:
        raise ConfigError(f"config file {hint}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """``"train.lr=1e-4"`` -> ``("train.lr", 1e-4)``; values are read as YAML scalars/lists."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    check_dotted_key(key, source="command line")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key, value


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def get_dotted(raw: Mapping[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def check_keys(
    raw: Mapping[str, Any], model: type[BaseModel], source: str, prefix: str = ""
) -> None:
    """Reject unknown keys, naming the closest valid key and listing all valid ones."""
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        sub = _field_model(model, str(key), dotted, source)
        if sub is not None and isinstance(value, Mapping):
            check_keys(value, sub, source, prefix=f"{dotted}.")


def check_dotted_key(key: str, source: str) -> None:
    model: type[BaseModel] | None = PillsnapConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        if model is None:
            raise ConfigError(f"{source}: {'.'.join(parts[:i])} is a value, not a section")
        model = _field_model(model, part, ".".join(parts[: i + 1]), source)


def _field_model(
    model: type[BaseModel], key: str, dotted: str, source: str
) -> type[BaseModel] | None:
    fields = model.model_fields
    if key not in fields:
        valid = sorted(fields)
        close = difflib.get_close_matches(key, valid, n=1)
        parent = dotted.rpartition(".")[0]
        hint = f" Did you mean {'.'.join(filter(None, [parent, close[0]]))!r}?" if close else ""
        raise ConfigError(
            f"{source}: unknown config key {dotted!r}.{hint} Valid keys here: {', '.join(valid)}"
        )
    annotation = fields[key].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _environment(env_file: Path | str | None, environ: Mapping[str, str] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, (key, is_list) in ENV_KEYS.items():
        text = env.get(name, "").strip()
        if not text or get_dotted(raw, key) is not None:
            continue
        value: Any = [p.strip() for p in text.split(",") if p.strip()] if is_list else text
        set_dotted(raw, key, value)


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = str(err["msg"]).removeprefix("Value error, ")
        got = err.get("input")
        shown = ""
        if not isinstance(got, dict | list) and got is not None and repr(got) not in message:
            shown = f" (got {got!r})"
        lines.append(f"  {where}: {message}{shown}")
    return "\n".join(lines)


def to_yaml(cfg: PillsnapConfig) -> str:
    """The resolved config as YAML, with API keys redacted (run folders are shared)."""
    data = cfg.model_dump(mode="json")
    if data["serve"]["api_keys"]:
        data["serve"]["api_keys"] = ["<redacted>"] * len(data["serve"]["api_keys"])
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def save_config(cfg: PillsnapConfig, path: Path) -> Path:
    """Write the resolved config (saved with every run and checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(to_yaml(cfg), encoding="utf-8")
    tmp.replace(path)
    return path


def config_hash(cfg: PillsnapConfig) -> str:
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
