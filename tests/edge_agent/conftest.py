"""Real peers for the edge-agent tests: pymodbus simulators, socat ptys, Mosquitto, an office.

The "office" here plays ingest's part of the contract: it takes telemetry batches from the
broker, keeps each (boot, seq) once, and publishes the end-to-end ack on the gateway's ack topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import pytest
import yaml

from edge_agent.aio import cancel_and_wait
from edge_agent.profiles import Profile, default_profiles_dir, load_profiles
from suvnet.protocol import (
    Ack,
    GatewayState,
    Reading,
    TelemetryBatch,
    Topics,
    decode_state,
    decode_telemetry,
    encode_ack,
)

PROFILES_DIR = default_profiles_dir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def profiles() -> dict[str, Profile]:
    return load_profiles(PROFILES_DIR)


@dataclass
class PtyPair:
    agent: str
    device: str
    proc: subprocess.Popen[bytes]


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    """Two linked pseudo-terminals made by socat: one end for the agent, one for the devices."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed")
    a, b = tmp_path / "ttyAGENT", tmp_path / "ttyDEV"
    proc = subprocess.Popen(
        ["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("socat did not create the pty pair")
        time.sleep(0.05)
    yield PtyPair(str(a), str(b), proc)
    proc.terminate()
    proc.wait(5)


class PrivateBroker:
    """A Mosquitto of our own on a free port, which a test may stop and start again."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
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

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)  # a broker that dies, not one that says bye
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed")
    broker = PrivateBroker(tmp_path)
    broker.start()
    yield broker
    broker.stop()


def write_gateway(
    tmp: Path,
    gateway: str,
    mqtt_url: str,
    topic_root: str,
    buses: list[dict[str, Any]],
    **extra: Any,
) -> Path:
    doc: dict[str, Any] = {
        "gateway": gateway,
        "profiles_dir": str(PROFILES_DIR),
        "mqtt": {"url": mqtt_url, "topic_root": topic_root, "reconnect_max_s": 1.0},
        "outbox": {"path": str(tmp / f"{gateway}-outbox.db"), "commit_interval_s": 0.02},
        "batch": {"max_readings": 20, "max_latency_s": 0.2, "resend_after_s": 5},
        "health_interval_s": 0.5,
        "buses": buses,
    }
    doc.update(extra)
    path = tmp / f"{gateway}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@dataclass
class Office:
    """Plays ingest: keeps each batch once (by boot and seq) and acks it when ``acking``."""

    url: str
    topics: Topics
    gateway: str
    acking: bool = True
    conflicts: int = 0
    batches: dict[tuple[str, int], TelemetryBatch] = field(default_factory=dict)
    arrivals: list[tuple[str, int]] = field(default_factory=list)
    states: list[GatewayState] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)

    def readings(self) -> list[Reading]:
        out: list[Reading] = []
        for key in sorted(self.batches):
            out.extend(self.batches[key].readings)
        return out

    async def run(self) -> None:
        parts = urlsplit(self.url)
        while True:
            try:
                async with aiomqtt.Client(
                    parts.hostname or "127.0.0.1", parts.port or 1883, identifier=None
                ) as client:
                    await client.subscribe(self.topics.telemetry(self.gateway), qos=1)
                    await client.subscribe(self.topics.state(self.gateway), qos=1)
                    async for msg in client.messages:
                        payload = (
                            bytes(msg.payload)
                            if isinstance(msg.payload, bytes | bytearray)
                            else b""
                        )
                        if str(msg.topic).endswith("/state"):
                            self.states.append(decode_state(payload))
                            self.got.set()
                            continue
                        batch = decode_telemetry(payload).batch
                        key = (batch.boot, batch.seq)
                        self.arrivals.append(key)
                        first = self.batches.setdefault(key, batch)
                        if first.readings != batch.readings:
                            self.conflicts += 1
                        self.got.set()
                        if self.acking:
                            await client.publish(
                                self.topics.ack(self.gateway),
                                encode_ack(Ack(batch.boot, ((batch.seq, batch.seq),))),
                                qos=1,
                            )
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running_office(url: str, topic_root: str, gateway: str) -> AsyncIterator[Office]:
    office = Office(url, Topics(root=topic_root), gateway)
    task = asyncio.create_task(office.run(), name="office")
    await asyncio.sleep(0.3)  # let it subscribe
    try:
        yield office
    finally:
        # its ack publish can swallow a cancel on Python 3.11 (see edge_agent.aio)
        await asyncio.wait_for(cancel_and_wait([task], again_after_s=1), 10)


async def wait_for(pred: Any, limit_s: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(step)


def agent_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    return env
