from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from suvnet.errors import MigrationError
from suvnet.migrate import applied, load_migrations, migrate, status


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
        with pytest.raises(MigrationError, match="timescaledb"):
            migrate(conn, timescaledb="on")
        # the failing migration left nothing half-applied
        assert conn.execute("SELECT to_regclass('readings')").fetchone() == (None,)
        assert [a.version for a in applied(conn)] == [1]


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
    dropped = db.execute("SELECT suvnet_apply_retention(365)").fetchone()
    assert dropped is not None and dropped[0] >= 1
    assert db.execute("SELECT count(*) FROM readings WHERE ts < '2020-01-01'").fetchone() == (0,)
