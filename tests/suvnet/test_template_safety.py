"""The test harness's template database cannot be blocked by a session connected to it.

On a TimescaleDB server the extension's background scheduler stays connected to every
database that has the extension, the template included, and ``CREATE DATABASE ... TEMPLATE``
then fails with "source database ... is being accessed by other users" (171 errors in one
run). Any open connection reproduces it, so these tests hold one, with or without TimescaleDB.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.conftest import create_test_db, drop_test_db, seal_template, with_dbname


@pytest.fixture
def scratch_template(pg_server_url: str) -> Iterator[str]:
    name = f"suvnet_tplt_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(with_dbname(pg_server_url, name), autocommit=True) as c:
        c.execute("CREATE TABLE marker (v text)")
        c.execute("INSERT INTO marker VALUES ('from the template')")
    try:
        yield name
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _copy_and_read(pg_server_url: str, template: str) -> Any:
    copy = create_test_db(pg_server_url, template)
    try:
        with psycopg.connect(with_dbname(pg_server_url, copy)) as c:
            return c.execute("SELECT v FROM marker").fetchone()
    finally:
        drop_test_db(pg_server_url, copy)


def test_a_sealed_template_is_copied_although_a_session_held_it(
    pg_server_url: str, scratch_template: str
) -> None:
    holder = psycopg.connect(with_dbname(pg_server_url, scratch_template), autocommit=True)
    try:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            seal_template(admin, scratch_template)
            row = admin.execute(
                "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = %s",
                (scratch_template,),
            ).fetchone()
            assert row == (True, False)
        assert _copy_and_read(pg_server_url, scratch_template) == ("from the template",)
        # the holder was ended, and no new session gets in
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="not currently accepting"):
            psycopg.connect(with_dbname(pg_server_url, scratch_template)).close()
    finally:
        holder.close()


def test_an_unsealed_template_with_a_session_is_copied_too(
    pg_server_url: str, scratch_template: str
) -> None:
    """A template left by an older run takes connections: the copy ends them and retries."""
    holder = psycopg.connect(with_dbname(pg_server_url, scratch_template), autocommit=True)
    try:
        assert _copy_and_read(pg_server_url, scratch_template) == ("from the template",)
    finally:
        holder.close()


def test_the_session_template_is_sealed(pg_server_url: str, template_db: str) -> None:
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = %s",
            (template_db,),
        ).fetchone()
    assert row == (True, False)
