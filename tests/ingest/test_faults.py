"""Fault injection: database connections killed, two workers, ingest killed and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from ingest.service import APP_NAME, IngestWorker
from suvnet.protocol import Topics
from tests.ingest.conftest import (
    AckListener,
    Publisher,
    batch_payload,
    count,
    now_ms,
    wait_for,
)

ROWS_PER_BATCH = 20


def _stream(
    pub: Publisher,
    topics: Topics,
    gw: str,
    boot: str,
    seqs: range,
    base_ts: int,
    *,
    pause: float = 0.0,
) -> None:
    devs = ("dev1", "dev2") if gw == "gw1" else ("dev3",)
    for seq in seqs:
        rows = [
            (devs[i % len(devs)], "p1", base_ts + seq * ROWS_PER_BATCH + i, float(seq))
            for i in range(ROWS_PER_BATCH)
        ]
        pub.publish(topics.telemetry(gw), batch_payload(gw, boot, seq, rows))
        if pause:
            time.sleep(pause)
    pub.flush()


def _terminate(db: psycopg.Connection[Any], dbname: str) -> int:
    rows = db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND application_name LIKE %s",
        (dbname, APP_NAME + "%"),
    ).fetchall()
    return len(rows)


def _exactly_once(db: psycopg.Connection[Any], n_batches: int, gw: str = "gw1") -> None:
    assert count(db, "SELECT count(*) FROM ingest_batches") == n_batches
    assert count(db, "SELECT count(*) FROM readings") == n_batches * ROWS_PER_BATCH
    # no duplicates on the natural key, and every seq present with all its rows
    assert (
        count(
            db,
            "SELECT count(*) FROM (SELECT value FROM readings GROUP BY value "
            "HAVING count(*) <> %s) x",
            ROWS_PER_BATCH,
        )
        == 0
    )


def test_database_connections_killed_during_stream(
    db: psycopg.Connection[Any],
    db_url: str,
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    publisher: Publisher,
    acks: AckListener,
) -> None:
    db.execute("TRUNCATE readings, ingest_batches, dead_letters")
    worker = start_worker()
    t = Topics(topic_root)
    n = 300
    base = now_ms() - 3_600_000
    feeder = threading.Thread(
        target=_stream, args=(publisher, t, "gw1", "k1", range(n), base), kwargs={"pause": 0.005}
    )
    feeder.start()
    dbname = db_url.rsplit("/", 1)[1]
    killed = 0
    for _ in range(4):
        time.sleep(0.3)
        killed += _terminate(db, dbname)
    feeder.join()
    wait_for(lambda: acks.acked("gw1", "k1") == set(range(n)), timeout=60)
    assert killed >= 4
    assert worker.metrics.db_failures._value.get() >= 1
    _exactly_once(db, n)
    assert count(db, "SELECT count(*) FROM dead_letters") == 0


def test_database_down_holds_messages_at_the_broker(
    db: psycopg.Connection[Any],
    db_url: str,
    pg_server_url: str,
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    publisher: Publisher,
    acks: AckListener,
) -> None:
    """An outage: no new connections, existing ones killed. Memory stays bounded, no loss."""
    db.execute("TRUNCATE readings, ingest_batches, dead_letters")
    worker = start_worker(receive_maximum=40)
    t = Topics(topic_root)
    dbname = db_url.rsplit("/", 1)[1]
    base = now_ms() - 3_600_000
    _stream(publisher, t, "gw1", "d1", range(20), base)
    wait_for(lambda: acks.acked("gw1", "d1") == set(range(20)))
    admin = psycopg.connect(pg_server_url, autocommit=True)
    admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
    try:
        _terminate(db, dbname)
        _stream(publisher, t, "gw1", "d1", range(20, 320), base)
        time.sleep(2.0)
        assert worker.metrics.db_up._value.get() == 0
        # the worker holds at most Receive Maximum messages; the broker keeps the rest
        assert 0 < worker.in_memory() <= 40
        assert worker.metrics.queue_depth._value.get() <= 40
        assert acks.acked("gw1", "d1") == set(range(20))
    finally:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        admin.close()
    wait_for(lambda: acks.acked("gw1", "d1") == set(range(320)), timeout=60)
    _exactly_once(db, 320)
    assert worker.metrics.db_up._value.get() == 1


def test_two_workers_share_the_subscription(
    db: psycopg.Connection[Any],
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    publisher: Publisher,
    acks: AckListener,
) -> None:
    db.execute("TRUNCATE readings, ingest_batches, dead_letters")
    w1 = start_worker()
    w2 = start_worker()
    t = Topics(topic_root)
    n = 400
    base = now_ms() - 3_600_000
    _stream(publisher, t, "gw1", "s1", range(n), base, pause=0.001)
    wait_for(lambda: acks.acked("gw1", "s1") == set(range(n)), timeout=60)
    _exactly_once(db, n)
    m1 = w1.metrics.messages.labels("telemetry")._value.get()
    m2 = w2.metrics.messages.labels("telemetry")._value.get()
    assert m1 + m2 == n
    assert m1 > 0
    assert m2 > 0


def _spawn(db_url: str, mqtt_url: str, topic_root: str, client_id: str, log: Path) -> Any:
    env = dict(os.environ)
    env.update(
        SUVNET_DATABASE_URL=db_url,
        SUVNET_MQTT_URL=mqtt_url,
        SUVNET_TOPIC_ROOT=topic_root,
        SUVNET_INGEST_CLIENT_ID=client_id,
        SUVNET_INGEST_METRICS_PORT="0",
        SUVNET_INGEST_SESSION_EXPIRY_S="300",
        SUVNET_INGEST_BATCH_MAX_DELAY_S="0.05",
        # the worker runs on the wall clock while the readings carry the tests' fixed clock
        # (in the past): accept them whatever today's date is
        SUVNET_INGEST_MAX_AGE_S=str(100 * 365 * 86_400),
    )
    suvnet = Path(sys.executable).parent / "suvnet"
    with log.open("ab") as fh:
        return subprocess.Popen(
            [str(suvnet), "ingest", "run"], env=env, stdout=fh, stderr=subprocess.STDOUT
        )


def test_ingest_killed_mid_stream_and_restarted(
    db: psycopg.Connection[Any],
    db_url: str,
    mqtt_url: str,
    topic_root: str,
    registry_ids: dict[str, int],
    publisher: Publisher,
    acks: AckListener,
    tmp_path: Path,
) -> None:
    db.execute("TRUNCATE readings, ingest_batches, dead_letters")
    t = Topics(topic_root)
    client_id = f"test-kill-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "ingest.log"
    proc = _spawn(db_url, mqtt_url, topic_root, client_id, log)
    try:
        wait_for(lambda: "connected to the broker" in log.read_text(), timeout=30)
        n = 600
        base = now_ms() - 3_600_000
        feeder = threading.Thread(
            target=_stream, args=(publisher, t, "gw1", "r1", range(n), base), kwargs={"pause": 0.01}
        )
        feeder.start()
        wait_for(lambda: count(db, "SELECT count(*) FROM ingest_batches") > 100, timeout=30)
        proc.send_signal(signal.SIGKILL)  # no chance to finish anything
        proc.wait(10)
        mid = count(db, "SELECT count(*) FROM ingest_batches")
        assert mid < n
        time.sleep(1.0)  # the stream goes on while ingest is down; the broker keeps it
        proc = _spawn(db_url, mqtt_url, topic_root, client_id, log)
        feeder.join()
        try:
            # (a loaded CI machine may take tens of seconds to start the worker again)
            wait_for(lambda: acks.acked("gw1", "r1") == set(range(n)), timeout=180)
        except AssertionError:
            # say which it is: batches lost, or stored batches whose end-to-end ack was lost
            stored = {r[0] for r in db.execute("SELECT seq FROM ingest_batches WHERE boot = 'r1'")}
            unacked = set(range(n)) - acks.acked("gw1", "r1")
            raise AssertionError(
                f"{len(unacked)} batches never acked: {len(unacked - stored)} of them not "
                f"stored ({sorted(unacked - stored)[:10]}), {len(unacked & stored)} stored "
                f"({sorted(unacked & stored)[:10]})"
            ) from None
        _exactly_once(db, n)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "ingest worker stopped" in log.read_text()


def test_crashed_writer_is_restarted_and_nothing_is_lost(
    db: psycopg.Connection[Any],
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    publisher: Publisher,
    acks: AckListener,
) -> None:
    db.execute("TRUNCATE readings, ingest_batches, dead_letters")
    worker = start_worker()
    real_commit = worker._commit
    calls = {"n": 0}

    def commit_with_a_bug(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected failure in the writer")
        real_commit(*args)

    worker._commit = commit_with_a_bug  # type: ignore[method-assign,assignment]
    t = Topics(topic_root)
    base = now_ms() - 3_600_000
    _stream(publisher, t, "gw1", "c1", range(150), base, pause=0.002)
    wait_for(lambda: acks.acked("gw1", "c1") == set(range(150)), timeout=60)
    _exactly_once(db, 150)
    restarts = worker.metrics.task_restarts
    assert sum(restarts.labels(f"ingest-writer-{n}")._value.get() for n in (1, 2)) == 1
