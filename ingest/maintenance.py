"""The maintenance loop of an ingest worker (the ``ingest-maintenance`` thread).

On its own database connection it runs four tasks, each on its own schedule
(:class:`Schedule`):

* ``rollups`` every ``maintenance_interval_s``: re-aggregate the 5-minute buckets the commits
  marked, then the hours and days above them (one worker at a time: an advisory lock);
* ``freshness`` every ``maintenance_interval_s``: devices and gateways without fresh data go
  offline;
* ``partitions`` every hour: monthly partitions of ``readings`` up to three months ahead;
* ``prune`` every 6 hours: batch ids older than ``batch_retention_days``.

While the database is down it waits (capped backoff) and tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from ingest.config import APP_NAME, IngestConfig
from ingest.metrics import Metrics
from ingest.store import ensure_partitions, mark_stale, prune_batches, run_rollups
from suvnet.backoff import Backoff, BackoffPolicy

log = logging.getLogger("ingest")

Conn = psycopg.Connection[Any]

MONTH_MS = 31 * 86_400_000


class Schedule:
    """When each task is due next (pure: the times are passed in, ``time.monotonic`` seconds).

    Every task is due at once at start; after it ran it is due again ``every[task]`` later.
    """

    def __init__(self, every: dict[str, float]) -> None:
        self.every = dict(every)
        self._next = dict.fromkeys(every, 0.0)

    @classmethod
    def for_config(cls, config: IngestConfig) -> Schedule:
        return cls(
            {
                "partitions": 3600.0,
                "prune": 6 * 3600.0,
                "rollups": config.maintenance_interval_s,
                "freshness": config.maintenance_interval_s,
            }
        )

    def due(self, now: float) -> list[str]:
        """The tasks due at ``now``, in their fixed order."""
        return [task for task, at in self._next.items() if now >= at]

    def done(self, task: str, now: float) -> None:
        """``task`` ran (finishing at ``now``): due again a period later."""
        self._next[task] = now + self.every[task]


class Maintenance:
    """Runs the maintenance tasks of one worker (one thread: :meth:`run`)."""

    def __init__(
        self,
        database_url: str,
        config: IngestConfig,
        metrics: Metrics,
        *,
        stop: threading.Event,
        clock: Callable[[], float],
    ) -> None:
        self.database_url = database_url
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._stop = stop
        self._conn: Conn | None = None

    def run(self) -> None:
        """The maintenance loop: until ``stop``, run what is due, then look again in 1 s."""
        try:
            self._loop()
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _loop(self) -> None:
        backoff = Backoff(BackoffPolicy(base=1.0, cap=60.0))
        schedule = Schedule.for_config(self.config)
        while not self._stop.is_set():
            try:
                conn = self._connection()
                for task in schedule.due(time.monotonic()):
                    self.run_task(conn, task)
                    schedule.done(task, time.monotonic())
                backoff.reset()
                delay = 1.0
            except psycopg.Error as exc:
                log.debug("maintenance waits for the database: %s", exc)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                delay = backoff.next_delay()
            if self._stop.wait(delay):
                return

    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.database_url,
                autocommit=True,
                connect_timeout=10,
                application_name=APP_NAME + "-maintenance",
            )
        return self._conn

    def run_task(self, conn: Conn, task: str) -> None:
        """Run one maintenance task now (``rollups``, ``freshness``, ``partitions``, ``prune``)."""
        now_ms = int(self.clock() * 1000)
        if task == "rollups":
            self.metrics.rollup_buckets.inc(run_rollups(conn))
        elif task == "freshness":
            self._freshness(conn, now_ms)
        elif task == "partitions":
            made = ensure_partitions(conn, now_ms - MONTH_MS, now_ms + 3 * MONTH_MS)
            if made:
                log.info("created %d readings partition(s)", made)
        elif task == "prune":
            prune_batches(conn, keep_days=self.config.batch_retention_days, now_ms=now_ms)
        else:
            raise ValueError(f"unknown maintenance task {task!r}")

    def _freshness(self, conn: Conn, now_ms: int) -> None:
        gone = mark_stale(
            conn,
            factor=self.config.offline_factor,
            default_period_s=self.config.default_poll_period_s,
            now_ms=now_ms,
        )
        for what in gone:
            kind, _, code = what.partition(":")
            self.metrics.state_changes.labels(kind, "offline").inc()
            log.info("%s %s offline (no fresh data)", kind, code)
