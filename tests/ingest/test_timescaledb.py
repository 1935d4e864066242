"""The same write path on a TimescaleDB hypertable (skipped where the extension is missing)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ingest.store import prepare, run_rollups, write_rows
from tests.ingest.conftest import NOW, count


@pytest.mark.timescaledb
def test_ingest_writes_into_the_hypertable(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int]
) -> None:
    mode = db.execute("SELECT value FROM suvnet_meta WHERE key = 'storage_mode'").fetchone()
    if mode != ("timescaledb",):
        pytest.skip(
            "the TimescaleDB extension is not available on this PostgreSQL server, so readings "
            "is a plain partitioned table; the other ingest tests cover that mode"
        )
    pid = registry_ids["dev1.p1"]
    now = NOW  # a fixed instant (ms), never the wall clock
    rows: list[tuple[int, int, float | None, int]] = [
        (now - i * 1000, pid, float(i), 0) for i in range(100)
    ]
    with psycopg.connect(db_url, autocommit=True) as conn:
        prepare(conn)
        with conn.transaction():
            assert write_rows(conn, rows) == 100
        with conn.transaction():
            assert write_rows(conn, rows[:10]) == 0  # duplicates: staging path
        assert run_rollups(conn) > 0
    assert count(db, "SELECT count(*) FROM readings WHERE point_id = %s", pid) == 100
    assert (
        count(
            db,
            "SELECT count(*) FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'readings'",
        )
        >= 1
    )
    assert count(db, "SELECT sum(count) FROM readings_5m WHERE point_id = %s", pid) == 100
