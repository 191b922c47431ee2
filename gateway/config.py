"""Settings: one declarative table. docs/configuration.md is generated from it (and a test
checks that it is current). Each setting reads the first of its environment variables that is
set; command-line flags override the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec


class Setting(msgspec.Struct, frozen=True):
    name: str
    env: tuple[str, ...]
    type: type
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("host", ("CONVERGER_HOST",), str, "127.0.0.1", "Address to listen on."),
    Setting("port", ("CONVERGER_PORT", "PORT"), int, 4000, "HTTP port."),
    Setting("data_dir", ("CONVERGER_DATA_DIR",), str, "./data",
            "Directory for the database, the generated secret key and uploads."),
    Setting("db", ("CONVERGER_DB",), str, "",
            "SQLite database file. Default: `<data_dir>/converger.db`."),
    Setting("secret_key", ("CONVERGER_SECRET_KEY", "SECRET_KEY_BASE"), str, "",
            "Signs tokens and sessions and derives the encryption key for stored secrets. "
            "Generated and kept in `<data_dir>/secret_key` when unset."),
    Setting("admin_token", ("CONVERGER_ADMIN_TOKEN",), str, "",
            "An admin API token accepted by the management API, in addition to tokens made "
            "with `converger admin token create`."),
    Setting("synchronous", ("CONVERGER_SYNCHRONOUS",), str, "NORMAL",
            "SQLite `synchronous`: NORMAL (durable across process crashes) or FULL "
            "(also across power loss)."),
    Setting("public_url", ("CONVERGER_PUBLIC_URL",), str, "",
            "Public base URL (e.g. `https://chat.example.com`), used to build `streamUrl`. "
            "Default: taken from the request."),
    Setting("pipeline", ("CONVERGER_PIPELINE",), str, "queue",
            "Delivery backend: `queue` (durable, retried) or `inline` (one attempt inside the "
            "request; development only)."),
    Setting("delivery_concurrency", ("CONVERGER_DELIVERY_CONCURRENCY",), int, 20,
            "Number of delivery workers."),
    Setting("webhook_timeout", ("CONVERGER_WEBHOOK_TIMEOUT",), float, 10.0,
            "Seconds a delivery attempt may take (connect + response) before it counts as a "
            "failed, retryable attempt."),
    Setting("backoff_scale", ("CONVERGER_BACKOFF_SCALE",), float, 1.0,
            "Multiplier on every retry wait (backoff and `Retry-After`). For tests only: "
            "`0.001` turns the 30/90/270/810 s schedule into milliseconds."),
    Setting("max_body_bytes", ("CONVERGER_MAX_BODY_BYTES",), int, 1_048_576,
            "Largest JSON request body accepted (bytes)."),
    Setting("max_upload_bytes", ("CONVERGER_MAX_UPLOAD_BYTES",), int, 10_485_760,
            "Largest upload accepted (bytes)."),
    Setting("activity_list_cap", ("CONVERGER_ACTIVITY_LIST_CAP",), int, 10_000,
            "Most activities returned by the compatible activity list."),
    Setting("log_level", ("CONVERGER_LOG_LEVEL",), str, "INFO", "Log level."),
    Setting("access_log", ("CONVERGER_ACCESS_LOG",), bool, False, "Log every request."),
)


class Settings(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 4000
    data_dir: str = "./data"
    db: str = ""
    secret_key: str = ""
    admin_token: str = ""
    synchronous: str = "NORMAL"
    public_url: str = ""
    pipeline: str = "queue"
    delivery_concurrency: int = 20
    webhook_timeout: float = 10.0
    backoff_scale: float = 1.0
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 10_485_760
    activity_list_cap: int = 10_000
    log_level: str = "INFO"
    access_log: bool = False

    @property
    def db_path(self) -> Path:
        return Path(self.db) if self.db else Path(self.data_dir) / "converger.db"


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


def _convert(setting: Setting, raw: str) -> Any:
    if setting.type is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if setting.type is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{setting.env[0]} must be an integer, got {raw!r}") from None
    if setting.type is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{setting.env[0]} must be a number, got {raw!r}") from None
    return raw


def load(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, then ``overrides`` (command-line flags) on top."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        for var in setting.env:
            if env.get(var):
                values[setting.name] = _convert(setting, env[var])
                break
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    if settings.synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ConfigError("CONVERGER_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
    if settings.pipeline not in ("queue", "inline"):
        raise ConfigError("CONVERGER_PIPELINE must be 'queue' or 'inline'")
    if settings.delivery_concurrency < 1:
        raise ConfigError("CONVERGER_DELIVERY_CONCURRENCY must be at least 1")
    if settings.webhook_timeout <= 0 or settings.backoff_scale < 0:
        raise ConfigError("CONVERGER_WEBHOOK_TIMEOUT must be > 0 and CONVERGER_BACKOFF_SCALE >= 0")
    return settings


def markdown() -> str:
    """The settings table as Markdown (docs/configuration.md)."""
    lines = [
        "# Configuration",
        "",
        "Generated from `gateway/config.py` (`SETTINGS`); `tests/gateway/test_config.py` checks",
        "that this file is current. Regenerate with `converger settings --markdown > docs/configuration.md`.",
        "",
        "| setting | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for s in SETTINGS:
        env = ", ".join(f"`{e}`" for e in s.env)
        default = f"`{s.default}`" if s.default not in ("", None) else "—"
        lines.append(f"| {s.name} | {env} | {default} | {s.help} |")
    return "\n".join(lines) + "\n"
