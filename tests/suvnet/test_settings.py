from __future__ import annotations

from pathlib import Path

import pytest

from suvnet.errors import ConfigError
from suvnet.settings import DEFAULT_SECRET, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SUVNET_DATABASE_URL", "SUVNET_MQTT_URL", "SUVNET_MODE", "SUVNET_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.database_url is None and s.mqtt_url is None
    assert s.mode == "development"
    assert s.topic_root == "suvnet"


def test_production_refuses_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUVNET_MODE", "production")
    monkeypatch.delenv("SUVNET_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SUVNET_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("SUVNET_SECRET_KEY", "x" * 40)
    assert load_settings().secret_key != DEFAULT_SECRET


def test_config_file_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "suvnet.yaml"
    cfg.write_text("database_url: postgresql://file/db\ntopic_root: village\n")
    monkeypatch.setenv("SUVNET_CONFIG", str(cfg))
    monkeypatch.delenv("SUVNET_DATABASE_URL", raising=False)
    s = load_settings()
    assert s.database_url == "postgresql://file/db"
    assert s.topic_root == "village"
    monkeypatch.setenv("SUVNET_DATABASE_URL", "postgresql://env/db")
    assert load_settings().database_url == "postgresql://env/db"


def test_bad_values_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUVNET_TOPIC_ROOT", "a/#")
    monkeypatch.setenv("SUVNET_DB_POOL_MAX", "zero")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert "topic_root" in str(exc.value) and "db_pool_max" in str(exc.value)


def test_empty_url_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUVNET_DATABASE_URL", "  ")
    assert load_settings().database_url is None
