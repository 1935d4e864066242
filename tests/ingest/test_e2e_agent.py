"""Edge agent -> broker -> ingest -> PostgreSQL, with the broker killed and restarted and the
agent killed (SIGKILL) and restarted during the stream: every reading in the database once."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edge_agent.profiles import Profile, default_profiles_dir, load_profiles, published_names
from ingest.service import IngestWorker
from simulator.devices import SimulatedDevice
from simulator.server import SimServer
from tests.ingest.conftest import count, make_config

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs mosquitto")

GW = "gw-e2e-ingest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A Mosquitto of our own (persistent sessions on disk), to kill and start again."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        data = tmp / "mosquitto-data"
        data.mkdir()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {data}/\nautosave_interval 1\nmax_queued_messages 100000\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


def _register(db: psycopg.Connection[Any], profiles: dict[str, Profile]) -> None:
    gid = db.execute("INSERT INTO gateways (code) VALUES (%s) RETURNING id", (GW,)).fetchone()
    assert gid is not None
    for dev, prof in (("prv-e1", "prv_controller"), ("m-e1", "ultrasonic_water_meter")):
        did = db.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile) VALUES (%s, %s, %s, %s) "
            "RETURNING id",
            (dev, gid[0], profiles[prof].device_kind, prof),
        ).fetchone()
        assert did is not None
        for name in published_names(profiles[prof]):
            db.execute(
                "INSERT INTO points (device_id, name, poll_period_s) VALUES (%s, %s, 0.2)",
                (did[0], name),
            )


def _gateway_yaml(tmp: Path, mqtt_url: str, topic_root: str, port: int) -> Path:
    import yaml

    doc = {
        "gateway": GW,
        "profiles_dir": str(default_profiles_dir()),
        "mqtt": {"url": mqtt_url, "topic_root": topic_root, "reconnect_max_s": 1.0},
        "outbox": {"path": str(tmp / "outbox.db"), "commit_interval_s": 0.02},
        "batch": {"max_readings": 20, "max_latency_s": 0.2, "resend_after_s": 3},
        "health_interval_s": 1.0,
        "buses": [
            {
                "name": "tcp",
                "kind": "tcp",
                "host": "127.0.0.1",
                "port": port,
                "timeout_s": 0.5,
                "devices": [
                    {"id": "prv-e1", "unit": 1, "profile": "prv_controller", "poll_s": 0.2},
                    {"id": "m-e1", "unit": 2, "profile": "ultrasonic_water_meter", "poll_s": 0.2},
                ],
            }
        ],
    }
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _agent(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "suvnet-edge"
    with log.open("ab") as fh:
        return subprocess.Popen([str(exe), "run", "--config", str(cfg)], stdout=fh, stderr=fh)


async def _until(pred: Any, within_s: float, what: str) -> None:
    end = time.monotonic() + within_s
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_agent_stream_survives_broker_and_agent_kills(
    db: psycopg.Connection[Any], db_url: str, topic_root: str, tmp_path: Path
) -> None:
    profiles = load_profiles(default_profiles_dir())
    _register(db, profiles)
    broker = Broker(tmp_path)
    broker.start()
    sim_port = _free_port()
    sim = SimServer(
        [
            SimulatedDevice(profiles["prv_controller"], unit=1, seed=1),
            SimulatedDevice(profiles["ultrasonic_water_meter"], unit=2, seed=2),
        ],
        port=sim_port,
        step_s=0.1,
    )
    await sim.start()
    worker = IngestWorker(db_url, broker.url, make_config(), topic_root=topic_root)
    worker.start()
    cfg = _gateway_yaml(tmp_path, broker.url, topic_root, sim_port)
    log = tmp_path / "agent.log"
    agent = _agent(cfg, log)
    batches = "SELECT count(*) FROM ingest_batches"
    try:
        await _until(lambda: worker.wait_ready(0.1), 20, "ingest to be ready")
        await _until(lambda: count(db, batches) >= 5, 30, "batches before the faults")
        broker.kill()  # the broker dies (SIGKILL: no goodbye)
        await asyncio.sleep(2.0)
        broker.start()
        await _until(lambda: count(db, batches) >= 15, 40, "batches after the broker restart")
        agent.send_signal(signal.SIGKILL)  # the gateway dies mid-stream
        agent.wait(10)
        await asyncio.sleep(1.0)
        agent = _agent(cfg, log)  # same outbox: it re-sends what was not acknowledged
        await _until(lambda: count(db, batches) >= 25, 40, "batches after the agent restart")
        agent.send_signal(signal.SIGTERM)  # clean stop: flushes its last batch
        agent.wait(20)
        agent = _agent(cfg, log)
        # give the restarted agent time to re-send anything still unacknowledged, then stop it
        await asyncio.sleep(6.0)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        await sim.stop()
    await asyncio.sleep(1.0)
    worker.stop()
    broker.kill()
    # every batch of every boot, with no gap in its sequence numbers, and each batch's readings
    # present exactly once
    rows = db.execute(
        "SELECT boot, min(seq), max(seq), count(*), sum(readings) FROM ingest_batches GROUP BY boot"
    ).fetchall()
    assert rows, "no batch was stored"
    total = 0
    for boot, lo, hi, n, readings in rows:
        assert lo == 0, boot
        assert n == hi + 1, f"gap in the batches of boot {boot}"
        total += int(readings)
    assert count(db, "SELECT count(*) FROM readings") == total
    assert count(db, "SELECT count(*) FROM dead_letters") == 0
    assert total > 500
    assert worker._gen >= 2  # ingest lost the broker and came back
