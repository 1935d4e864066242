"""Fixtures for the registry, network and site tests: fresh databases and a DB snapshot."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner, Result

from tests.conftest import create_test_db, drop_test_db, with_dbname

REGISTRY_TABLES = (
    "zones",
    "networks",
    "nodes",
    "pipes",
    "valves",
    "pumps",
    "gateways",
    "devices",
    "points",
    "regions",
    "districts",
    "mahallas",
    "streets",
    "houses",
    "apartments",
)


@pytest.fixture
def fresh_db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh migrated database for this one test."""
    name = create_test_db(pg_server_url, template_db)
    try:
        yield with_dbname(pg_server_url, name)
    finally:
        drop_test_db(pg_server_url, name)


@pytest.fixture
def make_db(pg_server_url: str, template_db: str) -> Iterator[Callable[[], str]]:
    """Call it to get another fresh migrated database (dropped after the test)."""
    made: list[str] = []

    def make() -> str:
        name = create_test_db(pg_server_url, template_db)
        made.append(name)
        return with_dbname(pg_server_url, name)

    yield make
    for name in made:
        drop_test_db(pg_server_url, name)


def snapshot(url: str) -> dict[str, list[Any]]:
    """Every registry row with its xmin: equal snapshots mean no row was written at all."""
    out: dict[str, list[Any]] = {}
    with psycopg.connect(url) as conn:
        for table in REGISTRY_TABLES:
            out[table] = conn.execute(
                f"SELECT xmin::text, to_jsonb(t) FROM {table} t ORDER BY id"
            ).fetchall()
    return out


WNTR_NETWORKS = Path(str(importlib.util.find_spec("wntr").origin)).parent / "library" / "networks"  # type: ignore[union-attr]
EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """Run a typer app in this process against ``url`` (SUVNET_DATABASE_URL set, settings fresh).

    Sub-process runs (``python -m suvnet.cli``) cover the wiring; this keeps the rest fast.
    """
    from suvnet.settings import get_settings

    def run(app: typer.Typer, url: str, *args: str) -> Result:
        monkeypatch.setenv("SUVNET_DATABASE_URL", url)
        get_settings.cache_clear()
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})

    yield run
    get_settings.cache_clear()
