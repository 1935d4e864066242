"""The maintenance stage alone (ingest.maintenance): its schedule (pure), its tasks on the real
PostgreSQL judged by an injected clock, and its loop (no broker, no worker)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from ingest.maintenance import Maintenance, Schedule
from ingest.metrics import Metrics
from tests.ingest.conftest import CLOCK_START_S, make_config, wait_for


def test_every_task_runs_at_start_then_each_on_its_own_period() -> None:
    s = Schedule.for_config(make_config(maintenance_interval_s=10.0))
    assert s.due(0.0) == ["partitions", "prune", "rollups", "freshness"]
    for task in s.due(0.0):
        s.done(task, 5.0)
    assert s.due(14.9) == []
    assert s.due(15.0) == ["rollups", "freshness"]
    s.done("rollups", 15.0)
    assert s.due(20.0) == ["freshness"]  # not done at 15: still due
    assert s.due(3605.0) == ["partitions", "rollups", "freshness"]
    assert s.due(6 * 3600.0 + 5.0) == ["partitions", "prune", "rollups", "freshness"]


def _maintenance(db_url: str, clock_s: float, **kw: Any) -> Maintenance:
    return Maintenance(
        db_url,
        make_config(**kw),
        Metrics(),
        stop=threading.Event(),
        clock=lambda: clock_s,
    )


def _partitions(db: psycopg.Connection[Any]) -> set[str]:
    return {
        str(r[0])
        for r in db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'"
        ).fetchall()
    }


def test_partitions_are_made_around_the_clocks_month(
    db: psycopg.Connection[Any], db_url: str
) -> None:
    if not _partitions(db):
        pytest.skip("readings is not partitioned here (TimescaleDB hypertable)")
    far = datetime(2041, 3, 10, tzinfo=UTC).timestamp()  # a month no test writes in
    m = _maintenance(db_url, far)
    assert "readings_p204103" not in _partitions(db)
    m.run_task(db, "partitions")
    assert {"readings_p204102", "readings_p204103", "readings_p204106"} <= _partitions(db)
    assert "readings_p204108" not in _partitions(db)


def test_prune_forgets_batch_ids_older_than_the_retention_by_the_clock(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int]
) -> None:
    db.execute("TRUNCATE ingest_batches")
    gw = registry_ids["gw1"]
    for seq, days_ago in ((1, 40), (2, 36), (3, 34), (4, 1)):
        db.execute(
            "INSERT INTO ingest_batches (gateway_id, boot, seq, readings, rejected, sent_at, "
            "committed_at) VALUES (%s, 'prune', %s, 1, 0, now(), to_timestamp(%s))",
            (gw, seq, CLOCK_START_S - days_ago * 86400),
        )
    _maintenance(db_url, CLOCK_START_S, batch_retention_days=35).run_task(db, "prune")
    left = [r[0] for r in db.execute("SELECT seq FROM ingest_batches ORDER BY seq").fetchall()]
    assert left == [3, 4]


def test_an_unknown_task_is_refused(db: psycopg.Connection[Any], db_url: str) -> None:
    with pytest.raises(ValueError, match="unknown maintenance task 'vacuum'"):
        _maintenance(db_url, CLOCK_START_S).run_task(db, "vacuum")


_MINE = (
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
    "'suvnet-ingest-maintenance' AND datname = current_database()"
)


def test_the_loop_runs_the_tasks_and_stops_when_told(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int]
) -> None:
    db.execute("TRUNCATE ingest_rollup_dirty, ingest_rollup_watermark")
    db.execute(
        "INSERT INTO ingest_rollup_dirty (point_id, bucket, mark) VALUES (%s, to_timestamp(%s), 1)",
        (registry_ids["dev1.p1"], CLOCK_START_S // 300 * 300),
    )
    partitioned = bool(_partitions(db))
    m = _maintenance(db_url, datetime(2042, 1, 15, tzinfo=UTC).timestamp())
    th = threading.Thread(target=m.run, daemon=True)
    th.start()
    # the rollup job ran (the marked bucket is done) and so did the partitions, by the clock
    wait_for(lambda: db.execute("SELECT count(*) FROM ingest_rollup_watermark").fetchone() == (1,))
    assert m.metrics.rollup_buckets._value.get() == 1
    if partitioned:
        wait_for(lambda: "readings_p204203" in _partitions(db))
    assert db.execute(_MINE).fetchone() == (1,)  # on its own, named connection
    m._stop.set()
    th.join(5)
    assert not th.is_alive()
    wait_for(lambda: db.execute(_MINE).fetchone() == (0,))  # closed on the way out


def test_the_loop_waits_for_the_database_without_crashing() -> None:
    m = _maintenance("postgresql://postgres@127.0.0.1:1/none", CLOCK_START_S)
    th = threading.Thread(target=m.run, daemon=True)
    th.start()
    assert not m._stop.wait(0.5)
    assert th.is_alive()  # retrying with backoff
    m._stop.set()
    th.join(5)
    assert not th.is_alive()
