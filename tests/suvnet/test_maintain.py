"""suvnet db maintain: retention and compression of raw readings, run explicitly.

SUVNET_READINGS_RETENTION_DAYS did nothing (nothing called suvnet_apply_retention: with 30 days
set, 583,950 older readings stayed), and TimescaleDB's background jobs fail on PostgreSQL
15.20 with TimescaleDB 2.25.2, so compression never ran by itself. These tests run on a real
PostgreSQL in whichever mode the test server gives (plain on 127.0.0.1:5432, TimescaleDB when
SUVNET_TEST_DATABASE_URL names a TimescaleDB server); the mode-specific ones skip otherwise.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from suvnet.maintain import (
    MaintenanceError,
    last_runs,
    maintain,
    retention_cutoff,
    tasks_for,
    timescaledb_jobs,
)

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
"""The tests' "now" (never the wall clock)."""
POINT = 7
DAYS = 30
CUTOFF = NOW - timedelta(days=DAYS)  # 2026-11-02 03:00 UTC


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (0, None),
        (-1, None),
        (1, datetime(2026, 12, 1, 3, 0, tzinfo=UTC)),
        (30, datetime(2026, 11, 2, 3, 0, tzinfo=UTC)),
        (365, datetime(2025, 12, 2, 3, 0, tzinfo=UTC)),
    ],
)
def test_retention_cutoff(days: int, expected: datetime | None) -> None:
    assert retention_cutoff(NOW, days) == expected


def test_retention_cutoff_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="time zone"):
        retention_cutoff(datetime(2026, 12, 2), 30)


def test_tasks_per_mode() -> None:
    assert tasks_for("timescaledb") == ("retention", "compression")
    assert tasks_for("partitioned") == ("partitions", "retention")


def _mode(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT value FROM suvnet_meta WHERE key = 'storage_mode'").fetchone()
    assert row is not None
    return str(row[0])


def _load(conn: psycopg.Connection[Any], start: datetime, end: datetime) -> int:
    """Hourly readings of POINT from ``start`` to ``end``, and hourly rollups of them."""
    conn.execute(
        "SELECT suvnet_ensure_readings_partitions(%s, %s)", (start, end)
    )  # no-op on TimescaleDB
    conn.execute(
        "INSERT INTO readings (ts, point_id, value, quality) "
        "SELECT ts, %s, 1.5, 0 FROM generate_series(%s::timestamptz, %s, interval '1 hour') ts",
        (POINT, start, end),
    )
    conn.execute(
        "INSERT INTO readings_1h (point_id, bucket, min, max, sum, count, last, last_ts) "
        "SELECT point_id, ts, value, value, value, 1, value, ts FROM readings WHERE point_id = %s",
        (POINT,),
    )
    return _count(conn, "SELECT count(*) FROM readings WHERE point_id = %s", POINT)


def _count(conn: psycopg.Connection[Any], sql: str, *args: Any) -> int:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def _expected_kept(start: datetime, end: datetime) -> int:
    """Hourly rows from max(start, CUTOFF) to end (start and CUTOFF on the hour)."""
    first = max(start, CUTOFF)
    return int((end - first) / timedelta(hours=1)) + 1


def _hold_timescaledb_jobs(conn: psycopg.Connection[Any], days: int = DAYS) -> None:
    """TimescaleDB's own retention and compression jobs measure their age limits from the
    wall clock, not from the tests' NOW: on a later day the retention job would drop a chunk
    these tests expect to keep, and the compression job compress one they expect not to be.
    So the test database gets a retention policy of ``days`` (``maintain`` changes its limit
    in place and keeps it paused) and both jobs paused, in one transaction, before the
    scheduler may start them."""
    if _mode(conn) != "timescaledb":
        return
    with conn.transaction():
        conn.execute(
            "SELECT add_retention_policy('readings', drop_after => make_interval(days => %s))",
            (days,),
        )
        conn.execute(
            "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
            "WHERE hypertable_name = 'readings'"
        )


def test_retention_removes_exactly_the_old_readings_and_keeps_rollups(
    fresh_db_url: str,
) -> None:
    start, end = datetime(2026, 8, 15, tzinfo=UTC), NOW
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        _hold_timescaledb_jobs(conn)
        total = _load(conn, start, end)
        rollups = _count(conn, "SELECT count(*) FROM readings_1h WHERE point_id = %s", POINT)
        assert rollups == total

        results = maintain(conn, now=NOW, retention_days=DAYS)

        assert [r.task for r in results] == list(tasks_for(_mode(conn)))
        assert all(r.ok for r in results), results
        # nothing older than the cutoff is left, everything newer is
        assert _count(conn, "SELECT count(*) FROM readings WHERE ts < %s", CUTOFF) == 0
        kept = _count(conn, "SELECT count(*) FROM readings WHERE point_id = %s", POINT)
        assert kept == _expected_kept(start, end)
        assert _count(conn, "SELECT count(*) FROM readings WHERE ts = %s", CUTOFF) == 1
        # rollups stay
        assert _count(conn, "SELECT count(*) FROM readings_1h WHERE point_id = %s", POINT) == (
            rollups
        )
        retention = next(r for r in results if r.task == "retention")
        assert "2026-11-02 03:00 UTC" in retention.detail
        assert re.search(
            r"\d+ (partition|chunk)\(s\) dropped, [\d,]+ row\(s\) deleted", (retention.detail)
        )

        # a second run finds nothing to do and changes nothing
        again = maintain(conn, now=NOW, retention_days=DAYS)
        assert all(r.ok for r in again)
        assert "0 row(s) deleted" in next(r for r in again if r.task == "retention").detail
        assert _count(conn, "SELECT count(*) FROM readings WHERE point_id = %s", POINT) == kept

        # when each task last ran is kept
        runs = {r.task: r for r in last_runs(conn)}
        assert set(runs) == set(tasks_for(_mode(conn)))
        assert all(r.last_run_at == NOW and r.ok and r.last_ok_at == NOW for r in runs.values())


def test_plain_mode_drops_whole_old_partitions(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        if _mode(conn) != "partitioned":
            pytest.skip("the test server has TimescaleDB; the chunk test covers that mode")
        _load(conn, datetime(2026, 8, 15, tzinfo=UTC), NOW)
        maintain(conn, now=NOW, retention_days=DAYS)
        names = {
            str(r[0])
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'readings'::regclass"
            ).fetchall()
        }
        # August to October end before the cutoff (2 Nov): dropped; November straddles it
        assert not names & {"readings_p202608", "readings_p202609", "readings_p202610"}
        assert {"readings_p202611", "readings_p202612", "readings_default"} <= names
        # the partitions task made sure of the months ahead of "now"
        assert {"readings_p202701", "readings_p202702", "readings_p202703"} <= names


def test_zero_days_keeps_every_reading(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        total = _load(conn, datetime(2026, 8, 15, tzinfo=UTC), NOW)
        results = maintain(conn, now=NOW, retention_days=0)
        assert all(r.ok for r in results)
        assert "keeping every reading" in next(r for r in results if r.task == "retention").detail
        assert _count(conn, "SELECT count(*) FROM readings") == total


def test_a_failing_task_is_recorded_and_the_last_success_kept(
    fresh_db_url: str,
) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        _load(conn, datetime(2026, 10, 1, tzinfo=UTC), NOW)
        maintain(conn, now=NOW, retention_days=DAYS)
        later = NOW + timedelta(days=1)
        with psycopg.connect(fresh_db_url) as blocker:
            blocker.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
            conn.execute("SET lock_timeout = '200ms'")
            results = maintain(conn, now=later, retention_days=DAYS)
            blocker.rollback()
        retention = next(r for r in results if r.task == "retention")
        assert not retention.ok
        assert "lock" in retention.detail
        run = next(r for r in last_runs(conn) if r.task == "retention")
        assert (run.ok, run.last_run_at, run.last_ok_at) == (False, later, NOW)
        # the other tasks still ran
        assert len(results) == len(tasks_for(_mode(conn)))


def test_two_runs_do_not_overlap(fresh_db_url: str) -> None:
    with (
        psycopg.connect(fresh_db_url, autocommit=True) as conn,
        psycopg.connect(fresh_db_url, autocommit=True) as other,
    ):
        other.execute("SELECT pg_advisory_lock(%s)", (0x5356_4E45_5402,))
        with pytest.raises(MaintenanceError, match="another"):
            maintain(conn, now=NOW, retention_days=DAYS)
        other.execute("SELECT pg_advisory_unlock_all()")
        assert maintain(conn, now=NOW, retention_days=DAYS)


def test_a_database_not_migrated_is_refused(empty_db_url: str) -> None:
    with (
        psycopg.connect(empty_db_url, autocommit=True) as conn,
        pytest.raises(MaintenanceError, match="suvnet db migrate"),
    ):
        maintain(conn, now=NOW, retention_days=DAYS)


@pytest.mark.timescaledb
def test_timescaledb_chunks_are_compressed_and_dropped(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        if _mode(conn) != "timescaledb":
            pytest.skip(
                "the test server has no TimescaleDB (set SUVNET_TEST_DATABASE_URL to one); "
                "the plain-PostgreSQL tests cover retention there"
            )
        _hold_timescaledb_jobs(conn, days=90)
        start = NOW - timedelta(days=60)
        _load(conn, start, NOW)
        results = maintain(conn, now=NOW, retention_days=DAYS)
        assert all(r.ok for r in results), results
        assert _count(conn, "SELECT count(*) FROM readings WHERE ts < %s", CUTOFF) == 0
        assert _count(conn, "SELECT count(*) FROM readings") == _expected_kept(start, NOW)
        # every chunk that ends 14 days (compress_after) before now is compressed, no other
        chunks = conn.execute(
            "SELECT range_end, is_compressed FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'readings'"
        ).fetchall()
        assert chunks
        for range_end, compressed in chunks:
            assert compressed == (range_end <= NOW - timedelta(days=14)), (range_end, compressed)
        assert any(c for _, c in chunks)
        # the readings are still all there, compressed or not
        assert _count(conn, "SELECT count(*) FROM readings WHERE ts >= %s", CUTOFF) == (
            _expected_kept(start, NOW)
        )
        # TimescaleDB's own retention policy follows the setting
        policy = conn.execute(
            "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_name = 'readings'"
        ).fetchone()
        assert policy == ("30 days",)  # from 90: changed in place, still paused
        assert conn.execute(
            "SELECT bool_and(NOT scheduled) FROM timescaledb_information.jobs "
            "WHERE hypertable_name = 'readings'"
        ).fetchone() == (True,)
        assert {j.proc_name for j in timescaledb_jobs(conn)} >= {
            "policy_compression",
            "policy_retention",
        }

        again = maintain(conn, now=NOW, retention_days=DAYS)
        compression = next(r for r in again if r.task == "compression")
        assert compression.ok and ": 0 compressed" in compression.detail
        assert "0 row(s) deleted" in next(r for r in again if r.task == "retention").detail

        # 0 days: the policy goes, nothing else changes
        maintain(conn, now=NOW, retention_days=0)
        assert (
            conn.execute(
                "SELECT 1 FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"
            ).fetchone()
            is None
        )
        assert _count(conn, "SELECT count(*) FROM readings") == _expected_kept(start, NOW)
