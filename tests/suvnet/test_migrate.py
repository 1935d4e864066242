from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from suvnet.errors import MigrationError
from suvnet.migrate import (
    PRELOAD_FIX,
    StorageChoice,
    applied,
    choose_storage,
    load_migrations,
    migrate,
    parse_preload,
    server_timescaledb,
    status,
)
from tests.conftest import drop_test_db, with_dbname


def test_migrations_are_numbered_and_unique() -> None:
    migs = load_migrations()
    assert [m.version for m in migs] == sorted({m.version for m in migs})
    assert migs[0].version == 1


def test_migrate_from_empty_twice(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        first = migrate(conn)
        assert [m.version for m in first] == [m.version for m in load_migrations()]
        assert migrate(conn) == []
        assert [a.version for a in applied(conn)] == [m.version for m in first]
        st = status(conn)
        assert st.storage_mode in ("partitioned", "timescaledb")
        assert st.pending == []
        # every core table exists
        for table in (
            "regions",
            "mahallas",
            "zones",
            "nodes",
            "pipes",
            "gateways",
            "devices",
            "points",
            "readings",
            "readings_5m",
            "readings_1h",
            "readings_1d",
            "device_state_history",
            "gateway_state_history",
            "dead_letters",
        ):
            row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            assert row is not None and row[0] is not None, table


def test_two_migrators_at_once(empty_db_url: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            with psycopg.connect(empty_db_url, autocommit=True) as conn:
                barrier.wait()
                results.append([m.version for m in migrate(conn)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    # exactly one migrator applied everything, the other found nothing to do
    assert sorted(len(r) for r in results) == [0, len(load_migrations())]
    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert row is not None and row[0] == len(load_migrations())


def test_migrate_needs_autocommit(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url) as conn, pytest.raises(MigrationError):
        migrate(conn)


def test_timescaledb_on_without_extension_fails_cleanly(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        avail = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
        if avail:
            pytest.skip("the timescaledb extension is available on this server")
        with pytest.raises(MigrationError, match="timescaledb extension is not available"):
            migrate(conn, timescaledb="on")
        # refused before anything was written
        assert conn.execute("SELECT to_regclass('readings')").fetchone() == (None,)
        assert applied(conn) == []


def _ts_available(conn: psycopg.Connection[Any]) -> bool:
    return bool(
        conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    )


@pytest.mark.timescaledb
def test_timescaledb_path(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        if not _ts_available(conn):
            pytest.skip(
                "TimescaleDB extension is not installed on this PostgreSQL server; "
                "the hypertable path is tested where it is"
            )
        migrate(conn, timescaledb="on")
        st = status(conn)
        assert st.storage_mode == "timescaledb"
        assert st.timescaledb_version
        row = conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'readings'"
        ).fetchone()
        assert row == (True,)


def test_plain_partitioning_moves_default_rows(db: psycopg.Connection[Any]) -> None:
    if status(db).storage_mode != "partitioned":
        pytest.skip("database uses TimescaleDB")
    db.execute("INSERT INTO readings VALUES ('2019-03-05T10:00:00Z', 1, 2.5, 0)")
    assert db.execute("SELECT tableoid::regclass::text FROM readings").fetchone() == (
        "readings_default",
    )
    created = db.execute(
        "SELECT suvnet_ensure_readings_partitions('2019-03-01', '2019-04-01')"
    ).fetchone()
    assert created == (2,)
    assert db.execute("SELECT tableoid::regclass::text, value FROM readings").fetchone() == (
        "readings_p201903",
        2.5,
    )
    # the unique natural key holds across the partitioned table
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO readings VALUES ('2019-03-05T10:00:00Z', 1, 9.9, 0)")
    # retention drops whole old partitions
    row = db.execute(
        "SELECT dropped, deleted FROM suvnet_apply_retention(365, '2026-12-02T00:00:00Z')"
    ).fetchone()
    assert row is not None and row[0] >= 1
    assert db.execute("SELECT count(*) FROM readings WHERE ts < '2020-01-01'").fetchone() == (0,)


# ------------------------------------------------------------------ storage mode choice
WARN = "not preloaded"


@pytest.mark.parametrize(
    ("mode", "available", "preloaded", "timescaledb", "warning"),
    [
        ("off", False, False, False, None),
        ("off", True, False, False, None),
        ("off", True, True, False, None),
        ("auto", False, False, False, None),
        ("auto", True, True, True, None),
        ("auto", True, False, False, WARN),  # installed, not preloaded: plain, with a warning
        ("auto", False, True, False, None),  # library listed, extension files missing
        ("on", True, True, True, None),
    ],
)
def test_choose_storage(
    mode: str, available: bool, preloaded: bool, timescaledb: bool, warning: str | None
) -> None:
    choice = choose_storage(mode, available, preloaded)
    assert choice.timescaledb is timescaledb
    assert choice.setting == ("on" if timescaledb else "off")
    if warning is None:
        assert choice.warning is None
    else:
        assert choice.warning is not None and warning in choice.warning
        assert "shared_preload_libraries = 'timescaledb'" in choice.warning
        assert "restart" in choice.warning


@pytest.mark.parametrize(
    ("available", "preloaded", "message"),
    [
        (False, False, "extension is not available"),
        (False, True, "extension is not available"),
        (True, False, "without being preloaded: " + PRELOAD_FIX),
    ],
)
def test_on_refuses_what_cannot_work(available: bool, preloaded: bool, message: str) -> None:
    with pytest.raises(MigrationError) as err:
        choose_storage("on", available, preloaded)
    assert message in str(err.value)


def test_choose_storage_rejects_an_unknown_mode() -> None:
    with pytest.raises(MigrationError, match="auto, on or off"):
        choose_storage("yes", True, True)
    assert StorageChoice(True).setting == "on"


@pytest.mark.parametrize(
    ("setting", "names"),
    [
        ("", []),
        ("timescaledb", ["timescaledb"]),
        ("pg_stat_statements, timescaledb", ["pg_stat_statements", "timescaledb"]),
        ("'$libdir/timescaledb.so',auto_explain", ["timescaledb", "auto_explain"]),
        ('"timescaledb"', ["timescaledb"]),
        ("timescaledb_toolkit", ["timescaledb_toolkit"]),
    ],
)
def test_parse_preload(setting: str, names: list[str]) -> None:
    assert parse_preload(setting) == names


def test_a_user_who_may_not_read_the_preload_setting_gets_the_same_answer(
    pg_server_url: str, empty_db_url: str
) -> None:
    """shared_preload_libraries is for superusers; the loader's own settings tell the rest."""
    role = f"suvnet_t_role_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(empty_db_url, autocommit=True) as admin:
        expected = server_timescaledb(admin)
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        try:
            as_role = psycopg.conninfo.make_conninfo(empty_db_url, user=role)
            with psycopg.connect(as_role, autocommit=True) as c:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    c.execute("SHOW shared_preload_libraries")
                assert server_timescaledb(c) == expected
        finally:
            admin.execute(f'DROP ROLE "{role}"')


NOPRELOAD_URL = os.environ.get(
    "SUVNET_TEST_TSDB_NOPRELOAD_URL", "postgresql://postgres@127.0.0.1:5434/postgres"
)
"""A server where TimescaleDB is installed but not preloaded (docs/database.md, "Testing")."""


@pytest.fixture
def nopreload_db() -> Iterator[str]:
    try:
        with psycopg.connect(NOPRELOAD_URL, autocommit=True, connect_timeout=2) as c:
            state = server_timescaledb(c)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no server with TimescaleDB installed but not preloaded ({exc})")
    if state != (True, False):
        pytest.skip(f"{NOPRELOAD_URL}: (available, preloaded) is {state}, not (True, False)")
    name = f"suvnet_e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(NOPRELOAD_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_dbname(NOPRELOAD_URL, name)
    finally:
        drop_test_db(NOPRELOAD_URL, name)


@pytest.mark.timescaledb
def test_installed_but_not_preloaded_for_real(nopreload_db: str) -> None:
    """On a real server in that state CREATE EXTENSION ends the session (FATAL): auto must not
    try it, and on must refuse before writing anything."""
    with psycopg.connect(nopreload_db, autocommit=True) as conn:
        with pytest.raises(MigrationError, match=r"shared_preload_libraries = 'timescaledb'"):
            migrate(conn, timescaledb="on")
        assert applied(conn) == []
        warnings: list[str] = []
        done = migrate(conn, timescaledb="auto", on_warning=warnings.append)
        assert [m.version for m in done] == [m.version for m in load_migrations()]
        assert len(warnings) == 1 and "not preloaded" in warnings[0]
        # the session survived, and readings are plain partitions
        assert status(conn).storage_mode == "partitioned"
        assert (
            conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            is None
        )
