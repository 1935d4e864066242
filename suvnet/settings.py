"""Typed, validated settings for every suvnet service.

Values come, in order of precedence, from ``SUVNET_*`` environment variables, then from an
optional YAML config file (``SUVNET_CONFIG`` or ``--config``), then from the defaults below.
Settings are validated once at start; a bad value stops the program with a clear message.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import platformdirs
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from suvnet.errors import ConfigError

DEFAULT_SECRET = "change-me-suvnet-development-secret-not-for-production-use"  # noqa: S105 - the refused development default


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("suvnet", appauthor=False))


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the optional YAML config file named by ``SUVNET_CONFIG``."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is None:
            return
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if loaded is None:
            return
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must be a mapping of setting: value")
        self._data = {str(k).lower(): v for k, v in loaded.items()}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """Settings shared by the suvnet services (ingest, alarms, api, billing, demo)."""

    model_config = SettingsConfigDict(env_prefix="SUVNET_", extra="ignore", frozen=True)

    mode: Literal["development", "production"] = Field(
        "development", description="production refuses the default secret key"
    )
    home: Path = Field(
        default_factory=default_home,
        description="folder for the embedded database, demo files and generated output",
    )
    database_url: str | None = Field(
        None,
        description="PostgreSQL URL (postgresql://user@host:5432/db). "
        "Unset: an embedded PostgreSQL under $SUVNET_HOME/pgdata is started.",
    )
    mqtt_url: str | None = Field(
        None,
        description="MQTT broker URL (mqtt://user:pass@host:1883, mqtts:// for TLS). "
        "Unset: an in-process broker is started.",
    )
    topic_root: str = Field("suvnet", description="first level of every MQTT topic")
    timescaledb: Literal["auto", "on", "off"] = Field(
        "auto",
        description="use the TimescaleDB extension: auto = when the server has it",
    )
    secret_key: str = Field(DEFAULT_SECRET, description="key for signing tokens and cookies")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=1)
    readings_retention_days: int = Field(
        0, ge=0, description="drop raw readings older than this many days (0 = keep forever)"
    )
    grafana_url: str | None = None
    grafana_token: str | None = None

    @field_validator("database_url", "mqtt_url", "grafana_url", "grafana_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            return None
        return v

    @field_validator("topic_root")
    @classmethod
    def _topic_root_ok(cls, v: str) -> str:
        if not v or any(c in v for c in "+#") or v.startswith("/") or v.endswith("/"):
            raise ValueError("topic_root must be a plain topic prefix such as 'suvnet'")
        return v

    @model_validator(mode="after")
    def _production_secret(self) -> Settings:
        if self.mode == "production" and (
            self.secret_key == DEFAULT_SECRET or len(self.secret_key) < 32
        ):
            raise ValueError(
                "SUVNET_SECRET_KEY must be set to a random value of at least 32 characters "
                "in production mode"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        cfg = os.environ.get("SUVNET_CONFIG")
        return (
            init_settings,
            env_settings,
            _YamlSource(settings_cls, Path(cfg) if cfg else None),
        )


def load_settings(**overrides: Any) -> Settings:
    """Build and validate settings; raise :class:`ConfigError` with every problem listed."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (validated once)."""
    return load_settings()
