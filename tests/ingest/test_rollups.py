"""Rollups 5 min / 1 h / 1 d: equal to aggregates over readings, late data included."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from ingest.service import IngestWorker
from ingest.store import prepare, run_rollups, write_rows
from suvnet.protocol import Topics
from tests.ingest.conftest import (
    AckListener,
    Publisher,
    batch_payload,
    count,
    now_ms,
    wait_for,
)

_CHECK = """
SELECT count(*) FROM (
  SELECT point_id, date_bin(%(w)s::interval, ts, timestamptz 'epoch') AS b,
         min(value) mn, max(value) mx, sum(value) sm, count(value) n,
         (array_agg(value ORDER BY ts DESC))[1] lst, max(ts) lts
  FROM readings WHERE quality = 0 AND value IS NOT NULL GROUP BY 1, 2
) r FULL JOIN {table} t ON t.point_id = r.point_id AND t.bucket = r.b
WHERE t.point_id IS NULL OR r.point_id IS NULL OR t.count <> r.n OR t.min <> r.mn
   OR t.max <> r.mx OR abs(t.sum - r.sm) > 1e-6 OR t.last <> r.lst OR t.last_ts <> r.lts
"""


def _mismatches(db: psycopg.Connection[Any]) -> dict[str, int]:
    out = {}
    for table, width in (
        ("readings_5m", "5 min"),
        ("readings_1h", "1 hour"),
        ("readings_1d", "1 day"),
    ):
        row = db.execute(_CHECK.format(table=table), {"w": width}).fetchone()
        assert row is not None
        out[table] = int(row[0])
    return out


def test_rollups_match_raw_data_including_late_rows(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int]
) -> None:
    db.execute("TRUNCATE readings, readings_5m, readings_1h, readings_1d, ingest_rollup_dirty")
    p1, p2 = registry_ids["dev1.p1"], registry_ids["dev1.p2"]
    t0 = int(datetime(2026, 3, 1, 22, 0, tzinfo=UTC).timestamp() * 1000)
    rows: list[tuple[int, int, float | None, int]] = [
        (t0 + i * 37_000, p1 if i % 3 else p2, float(i % 17), 0) for i in range(400)
    ]
    rows += [(t0 + 5_000, p1, None, 2), (t0 + 6_000, p1, 999.0, 1)]  # not good: not rolled up
    with psycopg.connect(db_url, autocommit=True) as conn:
        prepare(conn)
        with conn.transaction():
            write_rows(conn, rows)
        assert run_rollups(conn) > 0
        assert _mismatches(db) == {"readings_5m": 0, "readings_1h": 0, "readings_1d": 0}
        assert count(db, "SELECT count(*) FROM ingest_rollup_dirty") == 0
        before = db.execute(
            "SELECT count, max FROM readings_1d WHERE point_id = %s ORDER BY bucket LIMIT 1", (p1,)
        ).fetchone()
        # late data, into buckets that were already rolled up
        late = [(t0 + 1_000, p1, 500.0, 0), (t0 + 2_000, p2, -3.0, 0)]
        with conn.transaction():
            write_rows(conn, late)
        assert run_rollups(conn) >= 2
        assert _mismatches(db) == {"readings_5m": 0, "readings_1h": 0, "readings_1d": 0}
        after = db.execute(
            "SELECT count, max FROM readings_1d WHERE point_id = %s ORDER BY bucket LIMIT 1", (p1,)
        ).fetchone()
        assert before is not None
        assert after == (before[0] + 1, 500.0)
        # nothing dirty: the job does nothing
        assert run_rollups(conn) == 0


def test_worker_keeps_rollups_current(
    db: psycopg.Connection[Any],
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    publisher: Publisher,
    acks: AckListener,
) -> None:
    db.execute("TRUNCATE readings, readings_5m, readings_1h, readings_1d, ingest_rollup_dirty")
    start_worker(maintenance_interval_s=0.5)
    t = Topics(topic_root)
    now = now_ms()
    for seq in range(10):
        rows = [("dev1", "p3", now - 7_200_000 + seq * 60_000 + i, float(i)) for i in range(30)]
        publisher.publish(t.telemetry("gw1"), batch_payload("gw1", "roll", seq, rows))
    publisher.flush()
    wait_for(lambda: acks.acked("gw1", "roll") == set(range(10)))
    wait_for(lambda: _mismatches(db) == {"readings_5m": 0, "readings_1h": 0, "readings_1d": 0})
    assert count(db, "SELECT sum(count) FROM readings_1h") == 300


def test_rollup_job_never_waits_for_a_writer_holding_a_mark(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int]
) -> None:
    """A writer re-marking a bucket holds its dirty row until it commits. The rollup job skips
    that row instead of waiting (so the two cannot deadlock) and does it in the next run."""
    db.execute("TRUNCATE readings, readings_5m, readings_1h, readings_1d, ingest_rollup_dirty")
    p1 = registry_ids["dev1.p1"]
    t0 = int(datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp() * 1000)
    rows: list[tuple[int, int, float | None, int]] = [
        (t0 + i * 60_000, p1, float(i), 0)
        for i in range(10)  # two 5-minute buckets
    ]
    with psycopg.connect(db_url, autocommit=True) as job, psycopg.connect(db_url) as writer:
        prepare(job)
        with job.transaction():
            write_rows(job, rows)
        assert count(db, "SELECT count(*) FROM ingest_rollup_dirty") == 2
        # the writer's transaction re-marks the first bucket and stays open
        writer.execute(
            "UPDATE ingest_rollup_dirty SET mark = mark + 1000 WHERE point_id = %s AND bucket = %s",
            (p1, datetime.fromtimestamp(t0 / 1000, tz=UTC)),
        )
        job.execute("SET lock_timeout = '3s'")  # waiting would fail the run, not hang it
        started = time.monotonic()
        assert run_rollups(job) == 2
        assert time.monotonic() - started < 3
        left = db.execute("SELECT bucket FROM ingest_rollup_dirty").fetchall()
        assert [b.timestamp() * 1000 for (b,) in left] == [t0]
        writer.commit()
        assert run_rollups(job) == 1
        assert count(db, "SELECT count(*) FROM ingest_rollup_dirty") == 0
        assert _mismatches(db) == {"readings_5m": 0, "readings_1h": 0, "readings_1d": 0}
