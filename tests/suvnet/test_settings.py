from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from suvnet.errors import ConfigError
from suvnet.settings import (
    DEFAULT_SECRET,
    KNOWN_SECRETS,
    MAKE_A_SECRET,
    load_settings,
    secret_bits,
    secret_key_problem,
)

ROOT = Path(__file__).resolve().parents[2]


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
    good = secrets.token_urlsafe(48)
    monkeypatch.setenv("SUVNET_SECRET_KEY", good)
    assert load_settings().secret_key == good


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (DEFAULT_SECRET, "published"),
        ("change-me-to-64-random-characters-change-me-to-64-random-characters", "published"),
        ("test-secret-key-for-the-api-tests-0123456789", "published"),
        ("  " + DEFAULT_SECRET + "  ", "published"),
        ("CHANGE-ME-please-" + "q7Zr2LmX9vB4nT6kW1sY8dF3hJ5gP0cA", "placeholder"),
        ("my-example-key-" + "q7Zr2LmX9vB4nT6kW1sY8dF3hJ5gP0cA", "placeholder"),
        ("short-but-random-8Xq2", "at least 32"),
        ("x" * 40, "predictable"),
        ("ab" * 32, "predictable"),
        ("bcdefghijklmnopqrstuvwxyzBCDEFGHIJKLMNOP", "predictable"),  # sequences
        ("q7Zr2LmX9vB4nT6k" * 4, "predictable"),  # one 16-character block repeated
        ("be9031a1e47b7bc591c602445faa7ea2", "predictable"),  # 32 hex digits: ~100 bits
    ],
)
def test_production_refuses_published_and_guessable_keys(key: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as exc:
        load_settings(mode="production", secret_key=key)
    message = str(exc.value)
    assert MAKE_A_SECRET in message  # says how to make a good one
    assert key.strip() not in message  # and never repeats the key
    load_settings(mode="development", secret_key=key)  # development takes anything


def test_generated_keys_are_accepted() -> None:
    for _ in range(200):
        assert secret_key_problem(secrets.token_urlsafe(48)) is None
        assert secret_key_problem(secrets.token_urlsafe(32)) is None
        assert secret_key_problem(secrets.token_hex(24)) is None  # openssl rand -hex 24
    assert secret_bits(secrets.token_urlsafe(48)) > 250


# quoted values (not f-strings or templates), and unquoted ones on lines of their own
_QUOTED = re.compile(r"""(?i)\b\w*(?:secret|key)\w*\s*[:=]\s*[rb]?["']([^"'{}\n]{8,})["']""")
_BARE = re.compile(r"(?im)^\s*(?:export\s+)?\w*(?:secret|key)\w*\s*[:=]\s*([^\s\"'#$]{8,})\s*$")
_TEXT = {".py", ".md", ".example", ".yml", ".yaml", ".toml", ".sh", ".env", ".cfg", ".ini"}
_SKIP = {".git", ".venv", "node_modules", "build", "dist", "__pycache__", ".mypy_cache"}


def repository_keys() -> Iterator[tuple[str, str]]:
    """(file, value) of every value assigned to a name with "secret" or "key" in it, in the
    repository's text files (the code, tests, docs, deploy files)."""
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in _SKIP or part.endswith((".egg-info", "_cache")) for part in rel.parts):
            continue
        if not path.is_file() or (path.suffix not in _TEXT and path.name != "Dockerfile"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in (_QUOTED, _BARE):
            for m in pattern.finditer(text):
                yield str(rel), m.group(1)


def test_every_key_written_in_the_repository_is_refused() -> None:
    """Whatever key someone copies from this repository (env.example, the docs, the tests,
    the benchmarks), production refuses it. A new test key that is random enough to pass
    must be added to suvnet.settings.KNOWN_SECRETS."""
    found = list(repository_keys())
    values = {v for _, v in found}
    assert values | {DEFAULT_SECRET} >= KNOWN_SECRETS, "a known secret is no longer found"
    accepted = [(f, v) for f, v in found if secret_key_problem(v) is None]
    assert accepted == []


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
