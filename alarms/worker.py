"""The alarm worker: poll → evaluate (engine.run_pass) → dispatch notifications, forever.

Stateless: everything it knows lives in the database (watermarks and evaluator state per
rule), so any number of workers may run; row locks share the rules out between them. A lost
database connection is re-opened with capped exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from alarms.engine import PassResult, run_pass
from alarms.notify import AlarmSettings, channels_from_settings, dispatch_due
from alarms.store import Conn
from suvnet.backoff import Backoff, BackoffPolicy
from suvnet.clock import utcnow
from suvnet.db import connect

log = logging.getLogger(__name__)


def ensure_grafana_route(conn: Conn, s: AlarmSettings) -> None:
    """With Grafana configured, every alarm state change becomes an annotation."""
    if s.grafana_url and s.grafana_token:
        conn.execute(
            "INSERT INTO alarm_routes (channel, target, events) VALUES ('grafana', '*', "
            "'{activate,clear,ack,shelve,unshelve,shelve_expired,suppress,unsuppress,"
            "remove_from_service,return_to_service}') ON CONFLICT DO NOTHING"
        )


@dataclass
class WorkerStats:
    passes: int = 0
    transitions: int = 0
    sent: int = 0


def work_once(conn: Conn, s: AlarmSettings, now: datetime) -> tuple[PassResult, int]:
    """One poll: evaluate every rule until caught up, then send due notifications."""
    start = now - timedelta(hours=s.lookback_h)
    res = run_pass(conn, now, start=start, batch=s.batch)
    total = res
    while res.more:
        res = run_pass(conn, now, start=start, batch=s.batch)
        total.transitions += res.transitions
        total.samples += res.samples
    d = dispatch_due(
        conn,
        channels_from_settings(s),
        now,
        max_attempts=s.max_attempts,
        retry_base_s=s.retry_base_s,
        retry_cap_s=s.retry_cap_s,
    )
    return total, d.sent


def run_worker(
    url: str,
    s: AlarmSettings,
    *,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] = utcnow,
    max_passes: int | None = None,
) -> WorkerStats:
    """Run until ``stop`` is set (or ``max_passes`` polls were made)."""
    stop = stop or threading.Event()
    stats = WorkerStats()
    backoff = Backoff(BackoffPolicy(base=0.5, cap=30.0))
    conn: Conn | None = None
    healthy = True
    while not stop.is_set():
        try:
            if conn is None or conn.closed:
                conn = connect(url, autocommit=True)
                ensure_grafana_route(conn, s)
                if not healthy:
                    log.info("alarm worker: database connection restored")
                healthy = True
            res, sent = work_once(conn, s, clock())
            backoff.reset()
            stats.passes += 1
            stats.transitions += res.transitions
            stats.sent += sent
            if res.transitions:
                log.info(
                    "alarm worker: %s transition(s), %s sample(s)", res.transitions, res.samples
                )
        except psycopg.OperationalError as exc:
            if healthy:
                log.warning("alarm worker: database connection lost: %s", str(exc).strip())
            healthy = False
            if conn is not None:
                conn.close()
            conn = None
            stop.wait(backoff.next_delay())
            continue
        if max_passes is not None and stats.passes >= max_passes:
            break
        stop.wait(s.poll_s)
    if conn is not None:
        conn.close()
    return stats
