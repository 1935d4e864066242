"""Typed, validated settings for every suvnet service.

Values come, in order of precedence, from ``SUVNET_*`` environment variables, then from an
optional YAML config file (``SUVNET_CONFIG`` or ``--config``), then from the defaults below.
Settings are validated once at start; a bad value stops the program with a clear message.
"""

from __future__ import annotations

import math
import os
from collections import Counter
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

MAKE_A_SECRET = 'python -c "import secrets;print(secrets.token_urlsafe(48))"'  # noqa: S105
"""The command the refusal message suggests for making a good SUVNET_SECRET_KEY."""

MIN_SECRET_LEN = 32
MIN_SECRET_BITS = 128

KNOWN_SECRETS: frozenset[str] = frozenset(
    {
        DEFAULT_SECRET,
        # deploy/env.example
        "change-me-to-64-random-characters-change-me-to-64-random-characters",
        # tests and benchmarks (tests/api/conftest.py, tests/api/test_hot_path.py, bench/)
        "test-secret-key-for-the-api-tests-0123456789",
        "hot-path-test-secret-0123456789-abcdefghijkl",
        "bench-secret-key-0123456789-abcdefghijklmnop",
    }
)
"""Secret keys written somewhere in the suvnet repository (placeholders, the development
default, the tests' and benchmarks' keys): anyone can read them, so production refuses them.
tests/suvnet/test_settings.py scans the repository and fails when a key found there is not
refused."""

PLACEHOLDER_MARKERS: tuple[str, ...] = (
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "not-for-production",
    "development-secret",
    "test-secret",
    "secret-key",
    "your-secret",
    "placeholder",
    "example",
    "insecure",
    "0123456789",
    "abcdefghij",
    "qwerty",
)
"""Parts of a key (compared in lower case) that show it was typed or copied from an example,
not generated."""


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
        "development",
        description="production refuses published or guessable secret keys, marks cookies "
        "Secure and keeps the API docs for staff",
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
    database_read_url: str | None = Field(
        None,
        description="PostgreSQL URL of a streaming replica (hot standby) of the database: "
        "the API's read-only pages (reports, the cabinet's history, map layers) read there "
        "while it keeps up. Unset: every read goes to SUVNET_DATABASE_URL.",
    )
    read_max_lag_s: float = Field(
        30.0,
        gt=0,
        description="a replica further behind the primary than this many seconds is "
        "skipped for reads (with a warning) until it catches up",
    )
    read_check_interval_s: float = Field(
        2.0,
        gt=0,
        description="how often the API asks the replica how far behind it is",
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
    postgis: Literal["auto", "on", "off"] = Field(
        "auto",
        description="keep the asset register's geometries in PostGIS: auto = when the server "
        "has it",
    )
    secret_key: str = Field(
        DEFAULT_SECRET,
        description="key for signing tokens and cookies; production refuses published and "
        f"guessable keys (make one with: {MAKE_A_SECRET})",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="largest request body the API reads (JSON, forms); larger ones get 413",
    )
    max_upload_bytes: int = Field(
        25 * 1024 * 1024,
        ge=1024,
        description="largest body of the file-upload endpoints (bank statements)",
    )
    api_docs: Literal["auto", "public", "staff", "off"] = Field(
        "auto",
        description="/api/docs and /api/openapi.json: public, staff (any staff login), off; "
        "auto = public in development, staff in production",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=1)
    db_pool_timeout_s: float = Field(
        30.0,
        gt=0,
        description="how long a request waits for a database connection before the API "
        "answers 503 (the database is unreachable)",
    )
    readings_retention_days: int = Field(
        0, ge=0, description="drop raw readings older than this many days (0 = keep forever)"
    )
    grafana_url: str | None = None
    grafana_token: str | None = None

    @field_validator(
        "database_url",
        "database_read_url",
        "mqtt_url",
        "grafana_url",
        "grafana_token",
        mode="before",
    )
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
        if self.mode == "production":
            problem = secret_key_problem(self.secret_key)
            if problem is not None:
                raise ValueError(problem)
        return self

    @property
    def api_docs_access(self) -> Literal["public", "staff", "off"]:
        """Who may read /api/docs and /api/openapi.json (``auto`` resolved by the mode)."""
        if self.api_docs == "auto":
            return "staff" if self.mode == "production" else "public"
        return self.api_docs

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


def secret_bits(secret: str) -> float:
    """A cautious estimate of the randomness of a key, in bits.

    Per character, the smaller of: the size of the character classes used (lower case 26,
    upper case 26, digits 10, anything else 33), and the Shannon entropy of the key's own
    character frequencies (catches keys made of few distinct characters). A character that
    continues a run ("aaa", "abc", "987") counts nothing, and a key made of one block
    repeated counts as that block. A key from ``secrets.token_urlsafe(48)`` (64 characters)
    scores about 350 bits, one from ``openssl rand -hex 32`` about 240.
    """
    if not secret:
        return 0.0
    pool = 0
    if any(c.islower() for c in secret):
        pool += 26
    if any(c.isupper() for c in secret):
        pool += 26
    if any(c.isdigit() for c in secret):
        pool += 10
    if any(not c.isalnum() for c in secret):
        pool += 33
    # a key that is one block written several times has the randomness of the block
    for period in range(1, len(secret) // 2 + 1):
        if secret[period:] == secret[:-period]:
            secret = secret[:period]
            break
    n = len(secret)
    shannon = -sum((k / n) * math.log2(k / n) for k in Counter(secret).values())
    per_char = min(math.log2(max(pool, 2)), shannon)
    # a character that continues a run of equal steps ("aaa", "abc", "987") counts nothing
    counted = sum(
        1
        for i, c in enumerate(secret)
        if i < 2
        or ord(c) - ord(secret[i - 1]) != ord(secret[i - 1]) - ord(secret[i - 2])
        or abs(ord(c) - ord(secret[i - 1])) > 1
    )
    return max(0.0, counted * per_char)


def secret_key_problem(secret: str) -> str | None:
    """Why a key may not sign production tokens, or None when it may.

    Refused: a key written anywhere in the suvnet repository (:data:`KNOWN_SECRETS`), one
    that contains a placeholder word (:data:`PLACEHOLDER_MARKERS`), one shorter than
    :data:`MIN_SECRET_LEN` characters, and one with less than about :data:`MIN_SECRET_BITS`
    bits of randomness (:func:`secret_bits`). The message never repeats the key itself.
    """
    how = f"make one with: {MAKE_A_SECRET}"
    key = secret.strip()
    lowered = key.lower()
    if key in KNOWN_SECRETS or secret in KNOWN_SECRETS:
        return (
            "SUVNET_SECRET_KEY is a value published in the suvnet sources (a placeholder, "
            f"the development default or a test key); anyone could sign tokens with it. {how}"
        )
    marker = next((m for m in PLACEHOLDER_MARKERS if m in lowered), None)
    if marker is not None:
        return (
            f"SUVNET_SECRET_KEY contains {marker!r}: it looks like a placeholder or an example, "
            f"not a random value. {how}"
        )
    if len(key) < MIN_SECRET_LEN:
        return (
            f"SUVNET_SECRET_KEY must have at least {MIN_SECRET_LEN} random characters in "
            f"production mode (it has {len(key)}). {how}"
        )
    bits = secret_bits(key)
    if bits < MIN_SECRET_BITS:
        return (
            f"SUVNET_SECRET_KEY is too predictable: about {bits:.0f} bits of randomness, at "
            f"least {MIN_SECRET_BITS} are needed (too few distinct characters, repeats or "
            f"sequences). {how}"
        )
    return None


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
