"""Database maintenance, run explicitly: ``suvnet db maintain``.

The tasks, in this order, each in its own transaction(s), each recorded in
``suvnet_maintenance`` (``suvnet db status`` shows the last run of each):

* ``partitions`` (plain PostgreSQL): the monthly partitions of readings from a month back to
  three months ahead exist (ingest creates them too; this covers a quiet month).
* ``retention``: with ``SUVNET_READINGS_RETENTION_DAYS`` > 0, raw readings older than that are
  removed (whole partitions or chunks dropped, the older rows of the one that straddles the
  limit deleted); rollups stay. On TimescaleDB the hypertable's retention policy is also set to
  the same limit (or removed for 0), so TimescaleDB's own jobs do it where they work.
* ``compression`` (TimescaleDB): every chunk older than the compression policy's
  ``compress_after`` (14 days) that is not compressed yet is compressed.

Every task is idempotent: a second run finds nothing left to do. TimescaleDB's background jobs
fail on some versions (2.25.2 on PostgreSQL 15.20: "cannot drop portal ... while it is being set
up"), so the scheduler runs this daily whatever the version. A session-level advisory lock
keeps two runs from overlapping. ``now`` is passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from suvnet.errors import DatabaseError

log = logging.getLogger(__name__)

LOCK_KEY = 0x5356_4E45_5402  # "SVNET" + 2: maintenance
DEFAULT_COMPRESS_AFTER = timedelta(days=14)


class MaintenanceError(DatabaseError):
    """Maintenance cannot start (not migrated, another run in progress)."""


@dataclass(frozen=True)
class TaskResult:
    task: str
    ok: bool
    detail: str
    duration_ms: int


@dataclass(frozen=True)
class LastRun:
    task: str
    last_run_at: datetime
    duration_ms: int
    ok: bool
    detail: str
    last_ok_at: datetime | None


@dataclass(frozen=True)
class JobState:
    """A TimescaleDB background job and how its last run went."""

    job_id: int
    proc_name: str
    last_run_status: str | None
    last_run_started_at: datetime | None
    total_failures: int
    last_error: str | None


def retention_cutoff(now: datetime, days: int) -> datetime | None:
    """The instant before which raw readings go; None keeps them all (``days`` <= 0)."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    return now - timedelta(days=days) if days > 0 else None


def tasks_for(storage_mode: str) -> tuple[str, ...]:
    """The tasks that apply to a storage mode, in the order they run (retention before
    compression: a chunk about to be dropped is not compressed first)."""
    if storage_mode == "timescaledb":
        return ("retention", "compression")
    return ("partitions", "retention")


def storage_mode(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT to_regclass('suvnet_maintenance') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    mode = conn.execute("SELECT value FROM suvnet_meta WHERE key = 'storage_mode'").fetchone()
    return str(mode[0]) if mode else None


def maintain(
    conn: psycopg.Connection[Any],
    *,
    now: datetime,
    retention_days: int,
    on_task: Callable[[TaskResult], None] | None = None,
) -> list[TaskResult]:
    """Run every task that applies to this database; return what each did.

    ``conn`` must be in autocommit mode. A task that fails is recorded as failed and the
    others still run.
    """
    if not conn.autocommit:
        raise MaintenanceError("maintain() needs an autocommit connection")
    mode = storage_mode(conn)
    if mode is None:
        raise MaintenanceError("the database is not migrated yet (run: suvnet db migrate)")
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
    if not got or not got[0]:
        raise MaintenanceError("another 'suvnet db maintain' is running on this database")
    try:
        steps: dict[str, Callable[[], str]] = {
            "partitions": lambda: _partitions(conn, now),
            "retention": lambda: _retention(conn, now, retention_days, mode),
            "compression": lambda: _compression(conn, now),
        }
        results: list[TaskResult] = []
        for task in tasks_for(mode):
            t0 = time.perf_counter()
            try:
                detail, ok = steps[task](), True
            except psycopg.Error as exc:
                detail, ok = f"failed: {str(exc).strip()}", False
                log.error("maintenance task %s failed: %s", task, detail)
            res = TaskResult(task, ok, detail, int((time.perf_counter() - t0) * 1000))
            _record(conn, res, now)
            results.append(res)
            if on_task is not None:
                on_task(res)
        return results
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def _record(conn: psycopg.Connection[Any], res: TaskResult, now: datetime) -> None:
    conn.execute(
        "INSERT INTO suvnet_maintenance (task, last_run_at, duration_ms, ok, detail, last_ok_at) "
        "VALUES (%(task)s, %(now)s, %(ms)s, %(ok)s, %(detail)s, CASE WHEN %(ok)s THEN %(now)s END) "
        "ON CONFLICT (task) DO UPDATE SET last_run_at = EXCLUDED.last_run_at, "
        "duration_ms = EXCLUDED.duration_ms, ok = EXCLUDED.ok, detail = EXCLUDED.detail, "
        "last_ok_at = coalesce(EXCLUDED.last_ok_at, suvnet_maintenance.last_ok_at)",
        {"task": res.task, "now": now, "ms": res.duration_ms, "ok": res.ok, "detail": res.detail},
    )


def _partitions(conn: psycopg.Connection[Any], now: datetime) -> str:
    row = conn.execute(
        "SELECT suvnet_ensure_readings_partitions(%(now)s::timestamptz - interval '1 month', "
        "%(now)s::timestamptz + interval '3 months')",
        {"now": now},
    ).fetchone()
    created = int(row[0]) if row else 0
    return f"{created} monthly partition(s) created" if created else "partitions are in place"


def _retention(conn: psycopg.Connection[Any], now: datetime, days: int, mode: str) -> str:
    policy = sync_retention_policy(conn, days) if mode == "timescaledb" else ""
    cutoff = retention_cutoff(now, days)
    if cutoff is None:
        return "keeping every reading (SUVNET_READINGS_RETENTION_DAYS=0)" + policy
    with conn.transaction():
        row = conn.execute(
            "SELECT dropped, deleted FROM suvnet_apply_retention(%s, %s)", (days, now)
        ).fetchone()
    dropped, deleted = (int(row[0]), int(row[1])) if row else (0, 0)
    unit = "chunk(s)" if mode == "timescaledb" else "partition(s)"
    return (
        f"readings before {cutoff:%Y-%m-%d %H:%M} UTC ({days} days): "
        f"{dropped} {unit} dropped, {deleted:,} row(s) deleted" + policy
    )


def sync_retention_policy(conn: psycopg.Connection[Any], days: int) -> str:
    """The hypertable's retention policy follows the setting (``days``; 0 removes it);
    returns what changed ("" for nothing). TimescaleDB mode only."""
    row = conn.execute(
        "SELECT job_id, config->>'drop_after' FROM timescaledb_information.jobs "
        "WHERE proc_name = 'policy_retention' AND hypertable_name = 'readings'"
    ).fetchone()
    want = f"{days} days" if days > 0 else None
    have = str(row[1]) if row else None
    if have == want:
        return ""
    with conn.transaction():
        if row and want:
            # the same job, its new limit: its schedule (paused or not) and history stay
            conn.execute(
                "SELECT alter_job(j.job_id, config => jsonb_set(j.config, '{drop_after}', "
                "to_jsonb(%s::text))) FROM timescaledb_information.jobs j WHERE j.job_id = %s",
                (want, row[0]),
            )
        elif row:
            conn.execute("SELECT remove_retention_policy('readings', if_exists => true)")
        else:
            conn.execute(
                "SELECT add_retention_policy('readings', drop_after => make_interval(days => %s))",
                (days,),
            )
    return (
        f"; TimescaleDB retention policy set to {days} days"
        if days > 0
        else "; TimescaleDB retention policy removed"
    )


def _compression(conn: psycopg.Connection[Any], now: datetime) -> str:
    enabled = conn.execute(
        "SELECT compression_enabled FROM timescaledb_information.hypertables "
        "WHERE hypertable_name = 'readings'"
    ).fetchone()
    if not enabled or not enabled[0]:
        return "compression is not enabled on readings"
    row = conn.execute(
        "SELECT (config->>'compress_after')::interval FROM timescaledb_information.jobs "
        "WHERE proc_name = 'policy_compression' AND hypertable_name = 'readings'"
    ).fetchone()
    after = row[0] if row and isinstance(row[0], timedelta) else DEFAULT_COMPRESS_AFTER
    cutoff = now - after
    chunks = conn.execute(
        "SELECT format('%%I.%%I', chunk_schema, chunk_name), is_compressed "
        "FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'readings' AND range_end <= %s ORDER BY range_start",
        (cutoff,),
    ).fetchall()
    done = 0
    for name, is_compressed in chunks:
        # one chunk per transaction; a partly compressed chunk (rows added or deleted after
        # it was compressed) is compressed again
        conn.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (name,))
        if not is_compressed:
            done += 1
    return (
        f"chunks ending before {cutoff:%Y-%m-%d %H:%M} UTC: {done} compressed, "
        f"{len(chunks) - done} already compressed"
    )


def last_runs(conn: psycopg.Connection[Any]) -> list[LastRun]:
    """The last run of each task ([] before migration 0005)."""
    row = conn.execute("SELECT to_regclass('suvnet_maintenance') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return []
    rows = conn.execute(
        "SELECT task, last_run_at, duration_ms, ok, detail, last_ok_at "
        "FROM suvnet_maintenance ORDER BY task"
    ).fetchall()
    return [LastRun(*r) for r in rows]


def timescaledb_jobs(conn: psycopg.Connection[Any]) -> list[JobState]:
    """TimescaleDB's policy jobs on readings and their last run ([] without TimescaleDB)."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if not row:
        return []
    errors = conn.execute(
        "SELECT to_regclass('timescaledb_information.job_errors') IS NOT NULL"
    ).fetchone()
    last_error = (
        "(SELECT e.err_message FROM timescaledb_information.job_errors e "
        " WHERE e.job_id = j.job_id ORDER BY e.finish_time DESC NULLS LAST LIMIT 1)"
        if errors and errors[0]
        else "NULL::text"
    )
    rows = conn.execute(
        "SELECT j.job_id, j.proc_name, s.last_run_status, s.last_run_started_at, "  # noqa: S608 - last_error is one of two constant SQL fragments
        f"coalesce(s.total_failures, 0), {last_error} "
        "FROM timescaledb_information.jobs j "
        "LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id "
        "WHERE j.hypertable_name = 'readings' ORDER BY j.job_id"
    ).fetchall()
    return [JobState(int(r[0]), str(r[1]), r[2], r[3], int(r[4]), r[5]) for r in rows]
