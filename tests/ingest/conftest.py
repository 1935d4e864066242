"""Fixtures of the ingest tests: registry rows, a running worker, publishers and ack listeners."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.config import IngestConfig
from ingest.service import IngestWorker
from ingest.validate import DeviceInfo, GatewayInfo, Registry, Window
from suvnet.protocol import Ack, Reading, TelemetryBatch, Topics, decode_ack, encode_telemetry

# The small registry and clock of the decoder tests (test_fast_path, test_scan)
NOW = 1_750_000_000_000
WIN = Window(max_age_s=3600, max_future_s=60)
SMALL_REGISTRY = Registry(
    gateways={"g1": GatewayInfo(1, True, 10.0), "goff": GatewayInfo(3, False, 10.0)},
    devices={
        "d1": DeviceInfo(11, 1, 10.0),
        "d2": DeviceInfo(12, 2, 10.0),
        "free": DeviceInfo(13, None, 10.0),
    },
    points={("d1", "p"): 101, ("d1", "q"): 102, ("d2", "p"): 103, ("free", "p"): 104},
)

# The clock of the ingest tests with a live worker: it starts at a fixed instant in the past
# (2026-06-09 10:13:20 UTC) and runs at the speed of real time, so timeouts still work but no
# test depends on today's date. Workers get it as their clock; readings are stamped by it.
CLOCK_START_S = 1_781_000_000.0
_T0 = time.monotonic()


def fixed_clock() -> float:
    """Seconds since the epoch on the tests' clock (see ``CLOCK_START_S``)."""
    return CLOCK_START_S + (time.monotonic() - _T0)


def now_ms() -> int:
    """Milliseconds since the epoch on the tests' clock."""
    return int(fixed_clock() * 1000)


GATEWAYS = ("gw1", "gw2", "gw-off")
DEVICES = {"dev1": "gw1", "dev2": "gw1", "dev3": "gw2", "loose": None}
POINTS = ("p1", "p2", "p3")


def wait_for(pred: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    """Poll ``pred`` until it returns a truthy value; fail the test after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s (last value {got!r})")
        time.sleep(every)


@pytest.fixture(scope="module")
def registry_ids(db_url: str) -> dict[str, int]:
    """Gateways gw1, gw2 (allowed) and gw-off (not allowed); devices with points p1..p3."""
    ids: dict[str, int] = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        for gw in GATEWAYS:
            row = conn.execute(
                "INSERT INTO gateways (code, allowed) VALUES (%s, %s) RETURNING id",
                (gw, gw != "gw-off"),
            ).fetchone()
            assert row is not None
            ids[gw] = int(row[0])
        for dev, dgw in DEVICES.items():
            row = conn.execute(
                "INSERT INTO devices (code, gateway_id, kind, profile) "
                "VALUES (%s, %s, 'pressure_sensor', 'test') RETURNING id",
                (dev, ids[dgw] if dgw else None),
            ).fetchone()
            assert row is not None
            ids[dev] = int(row[0])
            for p in POINTS:
                row = conn.execute(
                    "INSERT INTO points (device_id, name, poll_period_s) VALUES (%s, %s, 10) "
                    "RETURNING id",
                    (ids[dev], p),
                ).fetchone()
                assert row is not None
                ids[f"{dev}.{p}"] = int(row[0])
    return ids


def make_config(**kw: Any) -> IngestConfig:
    base: dict[str, Any] = {
        "client_id": f"test-ingest-{uuid.uuid4().hex[:8]}",
        "session_expiry_s": 120,
        "metrics_port": 0,
        "batch_max_delay_s": 0.05,
        "maintenance_interval_s": 1.0,
    }
    base.update(kw)
    return IngestConfig(**base)


@pytest.fixture
def start_worker(
    db_url: str, mqtt_url: str, topic_root: str, registry_ids: dict[str, int]
) -> Iterator[Callable[..., IngestWorker]]:
    """Start ingest workers in this process; all are stopped at the end of the test."""
    workers: list[IngestWorker] = []

    def start(**kw: Any) -> IngestWorker:
        w = IngestWorker(
            db_url, mqtt_url, make_config(**kw), topic_root=topic_root, clock=fixed_clock
        )
        w.start()
        assert w.wait_ready(20), "ingest worker did not get ready"
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop()


def broker_host_port(mqtt_url: str) -> tuple[str, int]:
    parts = urlsplit(mqtt_url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


def mosquitto_pub(mqtt_url: str, topic: str, payload: bytes, *, retain: bool = False) -> None:
    """Publish one message with the mosquitto_pub tool (a real third-party publisher)."""
    host, port = broker_host_port(mqtt_url)
    cmd = ["mosquitto_pub", "-h", host, "-p", str(port), "-q", "1", "-t", topic]
    cmd.append("-s" if payload else "-n")
    if retain:
        cmd.append("-r")
    subprocess.run(cmd, input=payload, check=True, timeout=20)


class Publisher:
    """A paho publisher (QoS 1) that waits until the broker has every message."""

    def __init__(self, mqtt_url: str, client_id: str | None = None) -> None:
        host, port = broker_host_port(mqtt_url)
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1, retain=retain))

    def flush(self, timeout: float = 30.0) -> None:
        for info in self.infos:
            info.wait_for_publish(timeout)
        self.infos.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()
        self.client._reset_sockets()


@pytest.fixture
def publisher(mqtt_url: str) -> Iterator[Publisher]:
    p = Publisher(mqtt_url)
    yield p
    p.close()


class AckListener:
    """Collects the end-to-end acks published by ingest for every gateway."""

    def __init__(self, mqtt_url: str, topics: Topics) -> None:
        host, port = broker_host_port(mqtt_url)
        self.acks: list[tuple[str, Ack]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-acks-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_connect = lambda c, *a: c.subscribe(f"{topics.root}/v1/+/ack", qos=1)
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._ready.wait(10)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        gw = msg.topic.split("/")[-2]
        with self._lock:
            self.acks.append((gw, decode_ack(bytes(msg.payload))))

    def acked(self, gateway: str, boot: str) -> set[int]:
        with self._lock:
            return {
                s
                for gw, a in self.acks
                if gw == gateway and a.boot == boot
                for lo, hi in a.ranges
                for s in range(lo, hi + 1)
            }

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client._reset_sockets()


@pytest.fixture
def acks(mqtt_url: str, topic_root: str) -> Iterator[AckListener]:
    listener = AckListener(mqtt_url, Topics(topic_root))
    yield listener
    listener.close()


def batch_payload(
    gw: str,
    boot: str,
    seq: int,
    rows: Sequence[tuple[str, str, int, float | None]],
    *,
    quality: int = 0,
) -> bytes:
    readings = tuple(Reading(d, p, ts, v, quality) for d, p, ts, v in rows)  # type: ignore[arg-type]
    return encode_telemetry(TelemetryBatch(gw, boot, seq, now_ms(), readings))


def count(db: psycopg.Connection[Any], sql: str, *args: Any) -> int:
    row = db.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])
