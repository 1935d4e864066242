"""Ingest on real Mosquitto and PostgreSQL, fed by mosquitto_pub (a third-party publisher)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from ingest.service import IngestWorker
from suvnet.protocol import Topics
from tests.ingest.conftest import (
    AckListener,
    Publisher,
    batch_payload,
    broker_host_port,
    count,
    fixed_clock,
    mosquitto_pub,
    now_ms,
    wait_for,
)


def _dead(db: psycopg.Connection[Any]) -> dict[str, int]:
    rows = db.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason").fetchall()
    return {str(r): int(n) for r, n in rows}


def test_bad_input_is_dead_lettered_and_valid_rows_land_once(
    db: psycopg.Connection[Any],
    mqtt_url: str,
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    acks: AckListener,
    registry_ids: dict[str, int],
) -> None:
    db.execute("TRUNCATE dead_letters, ingest_batches")
    worker = start_worker()
    t = Topics(topic_root)
    now = now_ms()
    ts0 = now - 60_000
    # one batch mixing good readings with every kind of bad reading; raw JSON, so that NaN,
    # Infinity and a string value reach the broker exactly as a broken gateway would send them
    rows = [
        f'["dev1","p1",{ts0},1.5,0]',
        f'["dev1","p2",{ts0},2.5]',
        f'["loose","p1",{ts0},5.0,0]',
        f'["dev1","p1",{ts0 + 1000},NaN,0]',
        f'["dev1","p1",{ts0 + 2000},Infinity,0]',
        f'["dev1","p3",{ts0},"abc",0]',
        f'["ghost","p1",{ts0},1.0,0]',
        f'["dev1","nope",{ts0},1.0,0]',
        f'["dev1","p3",{now + 86_400_000},1.0,0]',
        f'["dev3","p1",{ts0},1.0,0]',
        f'["dev1","p2",{ts0},1.0,9]',
    ]
    mixed = f'{{"v":1,"gw":"gw1","boot":"b1","seq":1,"sent":{now},"r":[{",".join(rows)}]}}'
    payload = mixed.encode()
    mosquitto_pub(mqtt_url, t.telemetry("gw1"), payload)
    wait_for(lambda: acks.acked("gw1", "b1") == {1})
    # the very same batch again, once committed: acked again, valid rows land exactly once
    mosquitto_pub(mqtt_url, t.telemetry("gw1"), payload)
    wait_for(lambda: worker.metrics.duplicate_batches._value.get() == 1)

    whole = {
        "bad_json": (t.telemetry("gw1"), b'{"v":1,"gw":"gw1","boot":'),
        "bad_field": (
            t.telemetry("gw1"),
            b'{"v":1,"gw":"gw1","boot":"b1","seq":"7","sent":1,"r":[]}',
        ),
        "bad_version": (
            t.telemetry("gw1"),
            b'{"v":2,"gw":"gw1","boot":"b1","seq":8,"sent":1,"r":[]}',
        ),
        "bad_shape": (t.telemetry("gw1"), b"[1,2,3]"),
        "unknown_gateway": (
            t.telemetry("gwX"),
            batch_payload("gwX", "b", 1, [("dev1", "p1", ts0, 1.0)]),
        ),
        "gateway_not_allowed": (
            t.telemetry("gw-off"),
            batch_payload("gw-off", "b", 1, [("dev1", "p1", ts0, 1.0)]),
        ),
        "gateway_mismatch": (
            t.telemetry("gw1"),
            batch_payload("gw2", "b", 1, [("dev3", "p1", ts0, 1.0)]),
        ),
        "too_large": (
            t.telemetry("gw1"),
            b'{"v":1,"gw":"gw1","boot":"b1","seq":9,"sent":1,"r":[],"pad":"'
            + b"x" * 1_100_000
            + b'"}',
        ),
    }
    for topic, body in whole.values():
        mosquitto_pub(mqtt_url, topic, body)

    per_reading = {
        "non_finite_value": 2,
        "bad_value_type": 1,
        "unknown_device": 1,
        "unknown_point": 1,
        "ts_in_future": 1,
        "device_not_on_gateway": 1,
        "bad_quality": 1,
    }
    expected = dict.fromkeys(whole, 1) | per_reading
    wait_for(lambda: sum(_dead(db).values()) >= sum(expected.values()))
    wait_for(lambda: len([1 for gw, a in acks.acks if gw == "gw1" and a.contains(1)]) >= 2)
    time.sleep(0.5)  # nothing more may arrive
    assert _dead(db) == expected
    good = db.execute(
        "SELECT d.code, p.name, r.value, r.quality FROM readings r JOIN points p "
        "ON p.id = r.point_id JOIN devices d ON d.id = p.device_id ORDER BY 1, 2"
    ).fetchall()
    assert good == [("dev1", "p1", 1.5, 0), ("dev1", "p2", 2.5, 0), ("loose", "p1", 5.0, 0)]
    assert count(db, "SELECT count(*) FROM ingest_batches") == 1
    # dead letters keep the raw bytes, topic and reason
    raw = db.execute(
        "SELECT payload, topic, gateway FROM dead_letters WHERE reason = 'bad_json'"
    ).fetchone()
    assert raw == (b'{"v":1,"gw":"gw1","boot":', t.telemetry("gw1"), "gw1")
    big = db.execute(
        "SELECT length(payload), detail FROM dead_letters WHERE reason = 'too_large'"
    ).fetchone()
    assert big is not None
    assert big[0] > 1_000_000
    nan = db.execute(
        "SELECT convert_from(payload, 'UTF8') FROM dead_letters "
        "WHERE reason = 'non_finite_value' ORDER BY id LIMIT 1"
    ).fetchone()
    assert nan is not None
    assert "NaN" in nan[0]
    # counters per reason
    m = worker.metrics
    assert m.dead_letters.labels("too_large")._value.get() == 1
    assert m.dead_letters.labels("non_finite_value")._value.get() == 2
    assert m.duplicate_batches._value.get() == 1
    # the status report sees the same
    from ingest.store import ingest_status

    st = ingest_status(db)
    assert ("too_large", 1) in st.dead_letters_24h
    gw1 = next(g for g in st.gateways if g.code == "gw1")
    assert (gw1.allowed, gw1.batches_1h, gw1.readings_1h) == (True, 1, 3)
    assert next(g for g in st.gateways if g.code == "gw-off").allowed is False
    # the worker is still running and still writes
    mosquitto_pub(
        mqtt_url, t.telemetry("gw1"), batch_payload("gw1", "b1", 2, [("dev2", "p1", ts0, 7.0)])
    )
    wait_for(lambda: acks.acked("gw1", "b1") >= {1, 2})
    assert count(db, "SELECT count(*) FROM readings WHERE value = 7.0") == 1
    assert all(th.is_alive() for th in worker._threads)


def test_acks_name_committed_ranges_and_state_history(
    db: psycopg.Connection[Any],
    mqtt_url: str,
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    acks: AckListener,
    publisher: Publisher,
    registry_ids: dict[str, int],
) -> None:
    worker = start_worker(metrics_port=0)
    t = Topics(topic_root)
    now = now_ms()
    for seq in range(10, 30):
        publisher.publish(
            t.telemetry("gw2"),
            batch_payload("gw2", "boot-A", seq, [("dev3", "p2", now - 1000 + seq, seq * 1.0)]),
        )
    publisher.flush()
    wait_for(lambda: acks.acked("gw2", "boot-A") == set(range(10, 30)))
    pid = registry_ids["dev3.p2"]
    assert count(db, "SELECT count(*) FROM readings WHERE point_id = %s", pid) == 20
    # data makes the device and the gateway online (with history)
    wait_for(
        lambda: (
            db.execute(
                "SELECT state FROM device_state WHERE device_id = %s", (registry_ids["dev3"],)
            ).fetchone()
            == ("online",)
        )
    )
    # last will: the retained state topic says offline
    mosquitto_pub(
        mqtt_url,
        t.state("gw2"),
        json.dumps({"v": 1, "gw": "gw2", "state": "offline", "ts": now}).encode(),
        retain=True,
    )
    try:
        wait_for(
            lambda: (
                db.execute(
                    "SELECT state FROM gateway_state WHERE gateway_id = %s", (registry_ids["gw2"],)
                ).fetchone()
                == ("offline",)
            )
        )
        mosquitto_pub(
            mqtt_url,
            t.state("gw2"),
            json.dumps(
                {"v": 1, "gw": "gw2", "state": "online", "ts": now + 1, "boot": "boot-B"}
            ).encode(),
            retain=True,
        )
        wait_for(
            lambda: (
                db.execute(
                    "SELECT state, boot FROM gateway_state WHERE gateway_id = %s",
                    (registry_ids["gw2"],),
                ).fetchone()
                == ("online", "boot-B")
            )
        )
        hist = db.execute(
            "SELECT state, reason FROM gateway_state_history WHERE gateway_id = %s ORDER BY id",
            (registry_ids["gw2"],),
        ).fetchall()
        assert [h[0] for h in hist] == ["online", "offline", "online"]
        assert hist[1][1].startswith("last will")
        assert hist[2][1] == "birth"
    finally:
        mosquitto_pub(mqtt_url, t.state("gw2"), b"", retain=True)
    # freshness: move the clock 10 minutes on (poll period 10 s x 3) -> offline with history
    with psycopg.connect(worker.database_url, autocommit=True) as conn:
        worker.clock = lambda: fixed_clock() + 600
        worker.run_task(conn, "freshness")
    st = db.execute(
        "SELECT state FROM device_state WHERE device_id = %s", (registry_ids["dev3"],)
    ).fetchone()
    assert st == ("offline",)
    dh = db.execute(
        "SELECT state, reason FROM device_state_history WHERE device_id = %s ORDER BY id",
        (registry_ids["dev3"],),
    ).fetchall()
    assert [h[0] for h in dh] == ["online", "offline"]
    assert "no good data" in dh[1][1]


def test_metrics_endpoint(
    start_worker: Callable[..., IngestWorker], topic_root: str, publisher: Publisher
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = start_worker(metrics_port=port)
    t = Topics(topic_root)
    publisher.publish(t.telemetry("gw1"), b"not json")
    publisher.flush()
    wait_for(lambda: worker.metrics.dead_letters.labels("bad_json")._value.get() == 1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    assert 'suvnet_ingest_dead_letters_total{reason="bad_json"} 1.0' in body
    assert "suvnet_ingest_commit_seconds_bucket" in body
    assert "suvnet_ingest_db_up 1.0" in body
    # a second worker on the same port: a clear error, not a traceback
    from ingest.errors import IngestError
    from tests.ingest.conftest import make_config

    other = IngestWorker(worker.database_url, "mqtt://127.0.0.1:1", make_config(metrics_port=port))
    with pytest.raises(IngestError, match="choose another --metrics-port"):
        other.start()


def test_newly_registered_gateway_is_picked_up(
    db: psycopg.Connection[Any],
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    publisher: Publisher,
    acks: AckListener,
) -> None:
    start_worker()
    time.sleep(2.2)  # the worker's registry snapshot is now older than the reload throttle
    gid = db.execute("INSERT INTO gateways (code) VALUES ('gw-new') RETURNING id").fetchone()
    assert gid is not None
    did = db.execute(
        "INSERT INTO devices (code, gateway_id, kind, profile) "
        "VALUES ('dev-new', %s, 'pressure_sensor', 't') RETURNING id",
        (gid[0],),
    ).fetchone()
    assert did is not None
    db.execute("INSERT INTO points (device_id, name) VALUES (%s, 'p1')", (did[0],))
    t = Topics(topic_root)
    now = now_ms()
    publisher.publish(
        t.telemetry("gw-new"), batch_payload("gw-new", "n", 0, [("dev-new", "p1", now, 4.5)])
    )
    publisher.flush()
    wait_for(lambda: acks.acked("gw-new", "n") == {0})
    assert count(db, "SELECT count(*) FROM readings WHERE value = 4.5") == 1


def test_same_readings_under_a_new_batch_key_are_stored_once(
    db: psycopg.Connection[Any],
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    publisher: Publisher,
    acks: AckListener,
    registry_ids: dict[str, int],
) -> None:
    """A gateway whose outbox re-sends old readings under a new boot id (after a reset)."""
    worker = start_worker()
    t = Topics(topic_root)
    now = now_ms()
    pid = registry_ids["dev2.p3"]
    old = [("dev2", "p3", now - 50_000 + i, float(i)) for i in range(5)]
    publisher.publish(t.telemetry("gw1"), batch_payload("gw1", "boot-1", 0, old))
    publisher.flush()
    wait_for(lambda: acks.acked("gw1", "boot-1") == {0})
    again = [*old, ("dev2", "p3", now - 40_000, 99.0)]
    publisher.publish(t.telemetry("gw1"), batch_payload("gw1", "boot-2", 0, again))
    publisher.flush()
    wait_for(lambda: acks.acked("gw1", "boot-2") == {0})
    assert count(db, "SELECT count(*) FROM readings WHERE point_id = %s", pid) == 6
    assert worker.metrics.duplicate_readings._value.get() == 5
    assert worker.metrics.readings._value.get() == 6


def test_mqtt_311_persistent_session(
    db: psycopg.Connection[Any],
    mqtt_url: str,
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    acks: AckListener,
    registry_ids: dict[str, int],
) -> None:
    """The same worker speaking MQTT 3.1.1 (clean_session=False), stopped and restarted."""
    cid = f"test-311-{time.monotonic_ns() % 10**8}"
    worker = start_worker(mqtt_protocol="3.1.1", client_id=cid)
    t = Topics(topic_root)
    now = now_ms()
    pid = registry_ids["dev2.p2"]
    mosquitto_pub(
        mqtt_url, t.telemetry("gw1"), batch_payload("gw1", "v3", 0, [("dev2", "p2", now, 1.0)])
    )
    wait_for(lambda: acks.acked("gw1", "v3") == {0})
    worker.stop()
    # published while the worker is away: the broker keeps it in the session
    mosquitto_pub(
        mqtt_url, t.telemetry("gw1"), batch_payload("gw1", "v3", 1, [("dev2", "p2", now + 1, 2.0)])
    )
    again = start_worker(mqtt_protocol="3.1.1", client_id=cid)
    wait_for(lambda: acks.acked("gw1", "v3") == {0, 1})
    assert count(db, "SELECT count(*) FROM readings WHERE point_id = %s", pid) == 2
    again.stop()
    # a 3.1.1 session never expires: remove it from the shared broker
    host, port = broker_host_port(mqtt_url)
    cmd = ["mosquitto_sub", "-h", host, "-p", str(port), "-i", cid, "-t", "none/x"]
    subprocess.run([*cmd, "-W", "1", "-V", "mqttv311"], check=False, timeout=10)


def test_retained_birth_is_read_at_start(
    db: psycopg.Connection[Any],
    mqtt_url: str,
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    registry_ids: dict[str, int],
) -> None:
    """A worker that starts after the gateway's birth still learns it (retained message)."""
    t = Topics(topic_root)
    now = now_ms()
    birth = {"v": 1, "gw": "gw-off", "state": "online", "ts": now, "boot": "rb", "health": {"q": 3}}
    mosquitto_pub(mqtt_url, t.state("gw-off"), json.dumps(birth).encode(), retain=True)
    try:
        start_worker()
        gid = registry_ids["gw-off"]
        wait_for(
            lambda: (
                db.execute(
                    "SELECT state, boot, health FROM gateway_state WHERE gateway_id = %s", (gid,)
                ).fetchone()
                == ("online", "rb", {"q": 3})
            )
        )
        assert (
            count(db, "SELECT count(*) FROM gateway_state_history WHERE gateway_id = %s", gid) == 1
        )
    finally:
        mosquitto_pub(mqtt_url, t.state("gw-off"), b"", retain=True)


def test_messages_with_and_without_mqtt5_properties(
    db: psycopg.Connection[Any],
    mqtt_url: str,
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    acks: AckListener,
    registry_ids: dict[str, int],
) -> None:
    """A plain QoS 1 PUBLISH takes the worker's lean MQTT path; one with MQTT 5 properties
    (here a user property, from mosquitto_pub) takes paho's full path. Both are stored."""
    worker = start_worker()
    lean: list[int] = []
    fast = worker._client.on_publish_fast
    assert fast is not None

    def counting(topic: str, payload: bytes, mid: int) -> None:
        lean.append(mid)
        fast(topic, payload, mid)

    worker._client.on_publish_fast = counting
    t = Topics(topic_root)
    now = now_ms()
    pid = registry_ids["dev2.p3"]
    plain = batch_payload("gw1", "props", 0, [("dev2", "p3", now - 2000, 1.25)])
    with_props = batch_payload("gw1", "props", 1, [("dev2", "p3", now - 1000, 2.5)])
    host, port = broker_host_port(mqtt_url)
    mosquitto_pub(mqtt_url, t.telemetry("gw1"), plain)
    wait_for(lambda: acks.acked("gw1", "props") == {0})
    assert len(lean) == 1
    cmd = ["mosquitto_pub", "-h", host, "-p", str(port), "-q", "1", "-V", "mqttv5"]
    cmd += ["-D", "publish", "user-property", "site", "yangiobod"]
    cmd += ["-t", t.telemetry("gw1"), "-s"]
    subprocess.run(
        cmd,
        input=with_props,
        check=True,
        timeout=20,
    )
    wait_for(lambda: acks.acked("gw1", "props") == {0, 1})
    assert len(lean) == 1  # the second one went through paho's own decoding
    got = db.execute(
        "SELECT value FROM readings WHERE point_id = %s ORDER BY ts", (pid,)
    ).fetchall()
    assert [v for (v,) in got][-2:] == [1.25, 2.5]
