"""Fixtures of the dashboards tests: a migrated database holding a small seeded village."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.dashboards.seed import seed


@pytest.fixture(scope="module")
def village(db_url: str) -> Iterator[dict[str, int]]:
    """Seed the module's database once; yields the point ids by name."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield seed(conn)


@pytest.fixture
def vdb(village: dict[str, int], db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """An autocommit connection to the seeded village database."""
    return db
