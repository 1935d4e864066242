"""Fixtures of the asset-register tests: a migrated database in each spatial mode.

``db_url`` (tests/conftest.py) is a clone of the template, migrated with SUVNET_POSTGIS=auto:
PostGIS where the server has it. ``portable_db_url`` is a database migrated with
SUVNET_POSTGIS=off, the form the embedded PostgreSQL of ``suvnet demo`` has."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from assets.store import Actor
from suvnet.migrate import migrate, server_postgis
from tests.conftest import drop_test_db, with_dbname

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
"""The tests' clock: never the wall clock."""


def actor(at: datetime = NOW, who: str = "tester", source: str = "test") -> Actor:
    return Actor(who=who, source=source, at=at)


@pytest.fixture(scope="module")
def portable_db_url(pg_server_url: str) -> Iterator[str]:
    name = f"suvnet_ap_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(pg_server_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as c:
            migrate(c, postgis="off", timescaledb="off")
        yield url
    finally:
        drop_test_db(pg_server_url, name)


@pytest.fixture(scope="module")
def postgis_db_url(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as c:
        if not server_postgis(c):
            pytest.skip(
                "PostGIS is not installed on this PostgreSQL server (apt-get install "
                "postgresql-15-postgis-3); the portable path is tested"
            )
        mode = c.execute("SELECT value FROM suvnet_meta WHERE key = 'spatial_mode'").fetchone()
        assert mode == ("postgis",), "the template was migrated without PostGIS"
    return db_url


@pytest.fixture(scope="module", params=["postgis", "portable"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """The test runs once in each spatial mode."""
    name = "postgis_db_url" if request.param == "postgis" else "portable_db_url"
    return str(request.getfixturevalue(name))
