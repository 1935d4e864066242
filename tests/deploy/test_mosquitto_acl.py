"""The generated Mosquitto password and ACL files on a real Mosquitto.

The broker is started for this module with the production configuration
(deploy/mosquitto/mosquitto.conf: no anonymous clients, per-listener password files, ACL,
client ids tied to user names on the gateway listener) with its two listeners moved to free
ports on 127.0.0.1 (the office listener plain, the gateway listener TLS with a throw-away
certificate) and temporary paths.

Session takeover: MQTT lets a new connection with a client id that is already connected
throw the old one off. The tests connect with one gateway's password and another client's
id, again and again, and check from both sides (the victim's own connection and the broker's
log) that nobody was thrown off. One test runs the same attack on the production config
without ``use_username_as_clientid`` and sees the takeover happen, so the attack is real and
the tests can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from dashboards.errors import AclError
from dashboards.mqtt_acl import (
    check_broker_conf,
    check_password,
    hash_password,
    parse_password_file,
    write_files,
)
from edge_agent.agent import Agent
from edge_agent.config import GatewayConfig, load_config
from edge_agent.profiles import default_profiles_dir, load_profiles, published_names
from ingest.config import CLIENT_ID_PREFIX, load_ingest_config
from ingest.service import IngestWorker
from tests.edge_agent.conftest import write_gateway
from tests.edge_agent.test_agent_mqtt import running, tcp_buses, tcp_sim

ROOT = Path(__file__).resolve().parents[2]
GATEWAYS = ["GW1", "GW2", "GW3", "gw-north", "gw-south"]
FIXED = {"suvnet-office": "office-pass", "suvnet-ingest": "ingest-pass"}
TIE_LINE = "use_username_as_clientid true"
PROD_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="the mosquitto broker is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_config(tmp: Path, port: int, tls_port: int, *, drop: tuple[str, ...] = ()) -> str:
    """The production config with its ports, paths and log destination moved for a test run:
    the office listener (services) on ``port``, the gateway listener (TLS) on ``tls_port``.
    Lines in ``drop`` are left out (to show what they protect against)."""
    out = []
    for line in PROD_CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key in ("log_dest", "log_timestamp_format") or line in drop:
            continue
        if line == "listener 1883 0.0.0.0":
            line = f"listener {port} 127.0.0.1"  # noqa: PLW2901
        elif line == "listener 8883 0.0.0.0":
            line = f"listener {tls_port} 127.0.0.1"  # noqa: PLW2901
        for prod, test in (
            ("/mosquitto/config/auth", str(tmp / "auth")),
            ("/mosquitto/config/certs", str(tmp / "certs")),
            ("/mosquitto/data/", str(tmp / "data") + "/"),
        ):
            line = line.replace(prod, test)  # noqa: PLW2901
        out.append(line)
    assert f"listener {port} 127.0.0.1" in out and f"listener {tls_port} 127.0.0.1" in out
    out += [f"user {getpass.getuser()}", "log_dest file " + str(tmp / "broker.log")]
    return "\n".join(out) + "\n"


@dataclass
class Broker:
    port: int
    proc: subprocess.Popen[bytes]
    auth: Path
    log: Path
    passwords: dict[str, str]
    tls_port: int
    certs: Path

    def log_lines(self) -> list[str]:
        time.sleep(0.2)  # let the broker write what it did
        return self.log.read_text().splitlines()

    def takeovers(self) -> list[str]:
        """The broker's own record of a client thrown off by a newer one with its id."""
        return [ln for ln in self.log_lines() if "already connected, closing old" in ln]


@contextlib.contextmanager
def started_broker(tmp: Path, *, drop: tuple[str, ...] = ()) -> Iterator[Broker]:
    """A Mosquitto from the production config and files written by ``write_files``."""
    (tmp / "data").mkdir()
    res = write_files(tmp / "auth", GATEWAYS, root="suvnet", fixed=FIXED)
    passwords = dict(FIXED)
    assert res.credentials is not None
    for line in res.credentials.read_text().splitlines():
        if line and not line.startswith("#"):
            user, pw = line.split(" ", 1)
            passwords[user] = pw
    port, tls_port = _free_port(), _free_port()
    (tmp / "certs").mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(tmp / "certs" / "server.key"),
            "-out",
            str(tmp / "certs" / "server.crt"),
        ],
        check=True,
        capture_output=True,
    )
    conf = tmp / "mosquitto.conf"
    conf.write_text(broker_config(tmp, port, tls_port, drop=drop))
    assert MOSQUITTO is not None
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    for p in (port, tls_port):
        while True:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    log = (tmp / "broker.log").read_text() if (tmp / "broker.log").exists() else ""
                    proc.kill()
                    pytest.fail(f"mosquitto did not start: {out}\n{log}")
                time.sleep(0.05)
    try:
        yield Broker(
            port, proc, tmp / "auth", tmp / "broker.log", passwords, tls_port, tmp / "certs"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with started_broker(tmp_path_factory.mktemp("mosquitto")) as b:
        yield b


class Client:
    """A paho client (MQTT 5) that collects what it receives, its PUBACK reason codes, and
    every CONNACK and disconnection it sees (paho reconnects by itself after a disconnect,
    so a client thrown off shows up as an extra disconnect and CONNACK)."""

    def __init__(
        self,
        broker: Broker,
        user: str | None,
        password: str | None = None,
        tls: bool = False,
        *,
        client_id: str | None = None,
        session_expiry_s: int | None = None,
    ) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.disconnects: queue.Queue[ReasonCode] = queue.Queue()
        self.pubacks: dict[int, ReasonCode] = {}
        self.client_id = client_id or f"t-{user}-{os.urandom(3).hex()}"
        self.persistent = session_expiry_s is not None
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        if user is not None:
            self.c.username_pw_set(
                user, password if password is not None else broker.passwords[user]
            )
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.c.on_disconnect = lambda c, u, f, rc, p: self.disconnects.put(rc)
        self.c.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.c.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        if tls:
            self.c.tls_set(ca_certs=str(broker.certs / "server.crt"))
        props = None
        if session_expiry_s is not None:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = session_expiry_s
        self.c.connect(
            "127.0.0.1",
            broker.tls_port if tls else broker.port,
            clean_start=session_expiry_s is None,
            properties=props,
        )
        self.c.loop_start()
        self.rc = self.connack.get(timeout=5)

    def subscribe(self, *topics: str) -> list[ReasonCode]:
        self.c.subscribe([(t, 1) for t in topics])
        return self.subacks.get(timeout=5)

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        deadline = time.monotonic() + 5
        while info.mid not in self.pubacks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.pubacks[info.mid]

    def received(self, settle: float = 0.5) -> list[tuple[str, bytes]]:
        time.sleep(settle)
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    def undisturbed(self) -> bool:
        """Connected once and never thrown off since."""
        return self.disconnects.empty() and self.connack.empty() and self.c.is_connected()

    def close(self) -> None:
        # a persistent session ends with the connection: an offline member of the shared
        # subscription would otherwise keep being handed batches meant for later tests
        props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0
        self.c.disconnect(properties=props if self.persistent else None)
        self.c.loop_stop()
        # paho closes loop_start's wake-up socket pair only when the client is collected,
        # which in a reference cycle can come after the sockets' own "unclosed" warning
        self.c._reset_sockets()


@pytest.fixture
def clients(broker: Broker) -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def connect(
    broker: Broker,
    clients: list[Client],
    user: str | None,
    password: str | None = None,
    **kw: Any,
) -> Client:
    """An office service's client: the office listener (plain MQTT)."""
    c = Client(broker, user, password, **kw)
    clients.append(c)
    return c


def gateway(broker: Broker, clients: list[Client], user: str, **kw: Any) -> Client:
    """A gateway's client: the gateway listener (TLS)."""
    c = Client(broker, user, tls=True, **kw)
    clients.append(c)
    return c


def attack(broker: Broker, user: str, victim_id: str, *, tls: bool) -> ReasonCode:
    """Connect with ``user``'s own password and ``victim_id`` as client id; stay a moment,
    then leave. Answers the broker's CONNACK reason."""
    c = Client(broker, user, tls=tls, client_id=victim_id)
    try:
        time.sleep(0.2)
        return c.rc
    finally:
        c.close()


def test_gateway_cannot_publish_under_another_gateways_topic(
    broker: Broker, clients: list[Client]
) -> None:
    office = connect(broker, clients, "suvnet-office")
    assert not office.rc.is_failure
    office.subscribe("suvnet/#")
    gw1 = gateway(broker, clients, "GW1")
    assert not gw1.rc.is_failure

    refused = gw1.publish("suvnet/v1/GW2/telemetry", b"forged")
    assert refused.is_failure and "authorized" in str(refused).lower()
    assert gw1.publish("suvnet/v1/GW2/state", b"forged").is_failure
    assert gw1.publish("suvnet/v1/GW1/cmd", b"self-command").is_failure  # cmd is office -> gateway
    ok = gw1.publish("suvnet/v1/GW1/telemetry", b"mine")
    assert not ok.is_failure

    got = office.received()
    assert ("suvnet/v1/GW1/telemetry", b"mine") in got  # the subscriber does receive
    assert [t for t, _ in got if "GW2" in t or t.endswith("/cmd")] == []


def test_gateway_reads_only_its_own_commands_and_acks(
    broker: Broker, clients: list[Client]
) -> None:
    gw1 = gateway(broker, clients, "GW1")
    gw1.subscribe("suvnet/v1/+/cmd", "suvnet/v1/+/ack", "suvnet/v1/+/telemetry", "suvnet/#")
    office = connect(broker, clients, "suvnet-office")
    for gw in ("GW1", "GW2"):
        for kind in ("cmd", "ack", "telemetry", "state", "cmd/result"):
            assert not office.publish(f"suvnet/v1/{gw}/{kind}", f"{gw}-{kind}".encode()).is_failure
    got = sorted({t for t, _ in gw1.received()})
    assert got == ["suvnet/v1/GW1/ack", "suvnet/v1/GW1/cmd"]


def test_ingest_shared_subscription_and_acks(broker: Broker, clients: list[Client]) -> None:
    ingest = connect(broker, clients, "suvnet-ingest")
    rcs = ingest.subscribe("$share/ingest/suvnet/v1/+/telemetry")
    assert not rcs[0].is_failure
    gw3 = gateway(broker, clients, "GW3")
    gw3.subscribe("suvnet/v1/GW3/ack")
    assert not gw3.publish("suvnet/v1/GW3/telemetry", b"batch").is_failure
    assert ingest.received() == [("suvnet/v1/GW3/telemetry", b"batch")]
    assert not ingest.publish("suvnet/v1/GW3/ack", b"acked").is_failure
    assert ingest.publish("suvnet/v1/GW3/cmd", b"no").is_failure  # ingest sends no commands
    assert gw3.received() == [("suvnet/v1/GW3/ack", b"acked")]


def test_each_password_works_only_on_its_own_listener(
    broker: Broker, clients: list[Client]
) -> None:
    """Gateways log in only on the gateway listener (TLS, ids tied to users), the office
    services only on the office listener (ids free, users shared by several processes)."""
    office = connect(broker, clients, "suvnet-office")
    office.subscribe("suvnet/v1/+/telemetry")
    gw = gateway(broker, clients, "GW2")
    assert not gw.rc.is_failure
    assert not gw.publish("suvnet/v1/GW2/telemetry", b"over tls").is_failure
    assert gw.publish("suvnet/v1/GW1/telemetry", b"forged over tls").is_failure
    assert office.received() == [("suvnet/v1/GW2/telemetry", b"over tls")]
    for user, tls in (("GW2", False), ("suvnet-office", True), ("suvnet-ingest", True)):
        c = Client(broker, user, tls=tls)
        try:
            assert c.rc.is_failure, (user, tls)
        finally:
            c.close()


def test_a_gateway_cannot_take_over_another_gateways_session(
    broker: Broker, clients: list[Client]
) -> None:
    """gw-north's password with gw-south's client id, ten times, on both listeners: gw-south
    stays connected (its connection sees no disconnect, the broker logs no takeover) and
    keeps publishing and receiving."""
    south_id = _gateway_cfg({"url": "mqtts://gw-south:x@broker:8883"}).mqtt_client_id
    assert south_id == "gw-south"  # the edge agent's default: its user name
    office = connect(broker, clients, "suvnet-office")
    office.subscribe("suvnet/v1/+/telemetry")
    south = gateway(broker, clients, "gw-south", client_id=south_id)
    assert not south.rc.is_failure
    south.subscribe("suvnet/v1/gw-south/ack")
    before = len(broker.takeovers())

    for _ in range(5):
        # on the gateway listener the broker replaces the id by the user name: it connects,
        # but as gw-north
        assert not attack(broker, "gw-north", "gw-south", tls=True).is_failure
        # on the office listener a gateway's password is refused outright
        assert attack(broker, "gw-north", "gw-south", tls=False).is_failure

    assert south.undisturbed()
    log = broker.log_lines()
    assert len(broker.takeovers()) == before
    assert not [ln for ln in log if " as gw-south " in ln and "u'gw-north'" in ln]
    assert [ln for ln in log if " as gw-north " in ln and "u'gw-north'" in ln]
    assert not south.publish("suvnet/v1/gw-south/telemetry", b"still here").is_failure
    assert ("suvnet/v1/gw-south/telemetry", b"still here") in office.received()
    assert not office.publish("suvnet/v1/gw-south/ack", b"acked").is_failure
    assert south.received() == [("suvnet/v1/gw-south/ack", b"acked")]
    assert south.undisturbed()


def test_two_ingest_workers_share_the_load_and_no_gateway_can_take_their_sessions(
    broker: Broker, clients: list[Client]
) -> None:
    """Two ingest workers, one user, their own client ids and persistent sessions, on the
    shared subscription: both stay connected through gw-north's attacks with their ids, and
    the batches are split between them, each delivered once."""
    ids = ("suvnet-ingest-w1", "suvnet-ingest-w2")
    workers = [
        connect(broker, clients, "suvnet-ingest", client_id=cid, session_expiry_s=300)
        for cid in ids
    ]
    for w in workers:
        assert not w.rc.is_failure
        assert not w.subscribe("$share/ingest/suvnet/v1/+/telemetry")[0].is_failure
    before = len(broker.takeovers())
    for cid in ids * 3:
        assert not attack(broker, "gw-north", cid, tls=True).is_failure
        assert attack(broker, "gw-north", cid, tls=False).is_failure
    assert all(w.undisturbed() for w in workers)
    assert len(broker.takeovers()) == before

    north = gateway(broker, clients, "gw-north", client_id=ids[0])  # even with a worker's id
    sent = [f"batch-{n}".encode() for n in range(20)]
    for payload in sent:
        assert not north.publish("suvnet/v1/gw-north/telemetry", payload).is_failure
    got = [w.received() for w in workers]
    assert sorted(p for g in got for _, p in g) == sorted(sent)  # each batch exactly once
    assert all(len(g) > 0 for g in got)  # both workers took a share
    assert all(w.undisturbed() for w in workers)


async def _until(pred: Callable[[], Any], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.1)


def _register(db: psycopg.Connection[Any]) -> None:
    """gw-north with the two simulated devices of the edge tests and every point their
    profiles publish, so that ingest stores what the agent sends."""
    profiles = load_profiles(default_profiles_dir())
    row = db.execute(
        "INSERT INTO gateways (code, allowed) VALUES ('gw-north', true) RETURNING id"
    ).fetchone()
    assert row is not None
    for dev, prof in (("prv-1", "prv_controller"), ("m-1", "ultrasonic_water_meter")):
        drow = db.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile) VALUES (%s, %s, %s, %s) "
            "RETURNING id",
            (dev, row[0], profiles[prof].device_kind, prof),
        ).fetchone()
        assert drow is not None
        for name in published_names(profiles[prof]):
            db.execute(
                "INSERT INTO points (device_id, name, poll_period_s) VALUES (%s, %s, 1)",
                (drow[0], name),
            )


async def test_edge_agent_and_ingest_end_to_end_through_the_tied_broker(
    broker: Broker, db: psycopg.Connection[Any], db_url: str, tmp_path: Path
) -> None:
    """The real edge agent as gw-north (TLS, gateway listener) and two real ingest workers
    (user suvnet-ingest, office listener, the default client id and a second one) on the
    production broker: gw-north's readings land in PostgreSQL and its batches are acked. Then
    gw-south's password tries gw-north's and the workers' client ids on both listeners, again
    and again: the agent and the workers are never thrown off (one connection each in the
    broker's log, no takeover) and the data keeps flowing."""
    _register(db)
    mark = len(broker.log_lines())
    # no session kept after the test: an offline member of the shared subscription would
    # still be handed batches
    cfg = load_ingest_config(
        metrics_port=0, session_expiry_s=0, batch_max_delay_s=0.05, maintenance_interval_s=1.0
    )
    assert cfg.client_id.startswith(CLIENT_ID_PREFIX)  # the default: suvnet-ingest-<hostname>
    url = f"mqtt://suvnet-ingest:{broker.passwords['suvnet-ingest']}@127.0.0.1:{broker.port}"
    workers = [
        IngestWorker(db_url, url, cfg),
        IngestWorker(db_url, url, cfg.model_copy(update={"client_id": f"{CLIENT_ID_PREFIX}e2e-2"})),
    ]
    sim = None
    try:
        for w in workers:
            w.start()
            assert await asyncio.to_thread(w.wait_ready, 30), "ingest worker not ready"
        sim, sim_port = await tcp_sim(load_profiles(default_profiles_dir()))
        (tmp_path / "pw").write_text(broker.passwords["gw-north"] + "\n")
        mqtt_cfg = {
            "url": f"mqtts://127.0.0.1:{broker.tls_port}",
            "username": "gw-north",
            "password_file": str(tmp_path / "pw"),
            "ca_file": str(broker.certs / "server.crt"),
            "topic_root": "suvnet",
            "reconnect_max_s": 1,
        }
        path = write_gateway(
            tmp_path, "gw-north", "mqtt://unused:1", "suvnet", tcp_buses(sim_port), mqtt=mqtt_cfg
        )
        loaded = load_config(path)
        assert loaded.config.mqtt_client_id == "gw-north"

        def stored() -> int:
            row = db.execute(
                "SELECT count(*) FROM readings r JOIN points p ON p.id = r.point_id "
                "JOIN devices d ON d.id = p.device_id WHERE d.code IN ('prv-1', 'm-1')"
            ).fetchone()
            return int(row[0]) if row else 0

        def acked_batches() -> int:
            row = db.execute(
                "SELECT count(*) FROM ingest_batches b JOIN gateways g ON g.id = b.gateway_id "
                "WHERE g.code = 'gw-north'"
            ).fetchone()
            return int(row[0]) if row else 0

        async with running(Agent(loaded)) as agent:
            await _until(lambda: agent.connected, 15, "the agent's TLS connection")
            await _until(lambda: acked_batches() >= 3 and stored() > 0, 30, "readings stored")
            await _until(lambda: len(agent.outbox.unacked()) <= 2, 15, "acks applied")
            victims = ["gw-north", *(w.config.client_id for w in workers)]
            for _ in range(3):
                for victim in victims:
                    for tls in (True, False):
                        rc = await asyncio.to_thread(attack, broker, "gw-south", victim, tls=tls)
                        assert rc.is_failure is not tls  # connects as gw-south, or is refused
            assert agent.connected
            sent, rows = agent.published_batches, stored()
            await _until(
                lambda: agent.published_batches >= sent + 3 and stored() > rows, 30, "more data"
            )
            await _until(lambda: len(agent.outbox.unacked()) <= 2, 15, "acks after the attacks")
            assert agent.connected
        log = broker.log_lines()[mark:]
        assert [ln for ln in log if "already connected, closing old" in ln] == []
        assert len([ln for ln in log if " as gw-north " in ln and "u'gw-north'" in ln]) == 1
        for w in workers:
            assert len([ln for ln in log if f" as {w.config.client_id} " in ln]) == 1
        assert [ln for ln in log if "u'gw-south'" in ln and " as gw-south " not in ln] == []
    finally:
        for w in workers:
            await asyncio.to_thread(w.stop)
        if sim is not None:
            await sim.stop()


def _gateway_cfg(mqtt_cfg: dict[str, Any]) -> GatewayConfig:
    bus = {"name": "b", "kind": "tcp", "host": "h", "devices": [{"id": "d", "profile": "p"}]}
    return GatewayConfig.model_validate({"gateway": "gw-south", "mqtt": mqtt_cfg, "buses": [bus]})


@pytest.mark.parametrize(
    ("mqtt_cfg", "expected"),
    [
        ({"url": "mqtts://gw-south:pw@broker:8883"}, "gw-south"),  # the user in the URL
        ({"url": "mqtts://broker:8883", "username": "gw-south"}, "gw-south"),
        ({"url": "mqtts://broker:8883"}, "gw-south"),  # no user: the gateway id
        ({"url": "mqtts://gw-south:pw@broker:8883", "client_id": "other"}, "other"),
    ],
)
def test_edge_agent_client_id_is_its_broker_user(mqtt_cfg: dict[str, Any], expected: str) -> None:
    """The edge agent's default client id is the id the gateway listener gives it anyway."""
    assert _gateway_cfg(mqtt_cfg).mqtt_client_id == expected


def test_without_the_tie_the_takeover_is_real(tmp_path: Path) -> None:
    """The control: the same production config without ``use_username_as_clientid`` lets
    gw-north's password throw gw-south off with gw-south's id (the broker logs it, gw-south's
    connection sees it). This is what the line in mosquitto.conf prevents."""
    assert TIE_LINE in PROD_CONF.read_text().splitlines()
    with started_broker(tmp_path, drop=(TIE_LINE,)) as weak:
        south = Client(weak, "gw-south", tls=True, client_id="gw-south")
        try:
            assert not south.rc.is_failure
            assert not attack(weak, "gw-north", "gw-south", tls=True).is_failure
            south.disconnects.get(timeout=5)  # thrown off
            assert any("Client gw-south already connected" in ln for ln in weak.takeovers())
        finally:
            south.close()
    assert any("use_username_as_clientid" in p for p in check_broker_conf(_without(TIE_LINE)))


def _without(line: str) -> str:
    return "\n".join(x for x in PROD_CONF.read_text().splitlines() if x != line) + "\n"


def test_the_production_conf_passes_the_check_and_unsafe_ones_do_not() -> None:
    assert check_broker_conf(PROD_CONF.read_text()) == []
    assert any(
        "per_listener_settings" in p
        for p in check_broker_conf(_without("per_listener_settings true"))
    )
    office_tied = PROD_CONF.read_text().replace(
        "password_file /mosquitto/config/auth/passwd\n",
        "password_file /mosquitto/config/auth/passwd\nuse_username_as_clientid true\n",
    )
    assert any("office listener" in p for p in check_broker_conf(office_tied))
    anonymous = PROD_CONF.read_text().replace("allow_anonymous false", "allow_anonymous true", 1)
    assert any("allow_anonymous true" in p for p in check_broker_conf(anonymous))
    # the layout before the fix: one password file for every listener, no tie
    old = "\n".join(
        [
            "allow_anonymous false",
            "password_file /mosquitto/config/auth/passwd",
            "acl_file /mosquitto/config/auth/acl",
            "listener 1883 0.0.0.0",
            "listener 8883 0.0.0.0",
        ]
    )
    assert check_broker_conf(old) != []


def test_check_conf_command(tmp_path: Path) -> None:
    from suvnet.cli import main

    assert main(["mqtt", "check-conf", str(PROD_CONF)]) == 0
    bad = tmp_path / "mosquitto.conf"
    bad.write_text(_without(TIE_LINE))
    assert main(["mqtt", "check-conf", str(bad)]) == 1


@pytest.mark.parametrize("code", ["suvnet-ingest-w1", "SUVNET-api", "suvnet-office"])
def test_gateway_codes_cannot_take_office_client_ids(tmp_path: Path, code: str) -> None:
    """A gateway's forced client id is its code: a code in the office's id space is refused
    and nothing is written."""
    with pytest.raises(AclError, match="suvnet-"):
        write_files(tmp_path, ["GW1", code], fixed=FIXED)
    assert list(tmp_path.iterdir()) == []


def test_older_single_password_file_is_split_keeping_the_hashes(tmp_path: Path) -> None:
    """A ``passwd`` of the layout before per-listener files held gateways and services: the
    gateways move to ``gateways.passwd`` with their hashes, ``passwd`` keeps the services."""
    old = {"GW1": hash_password("gw1-old"), "suvnet-api": hash_password("api-old")}
    (tmp_path / "passwd").write_text("".join(f"{u}:{h}\n" for u, h in old.items()))
    res = write_files(tmp_path, ["GW1", "GW2"], fixed=FIXED)
    office = parse_password_file(res.passwd.read_text())
    gws = parse_password_file(res.gateway_passwd.read_text())
    assert set(office) == {"suvnet-ingest", "suvnet-api", "suvnet-office"}
    assert set(gws) == {"GW1", "GW2"}
    assert gws["GW1"] == old["GW1"] and office["suvnet-api"] == old["suvnet-api"]
    assert res.created == ("GW2",)
    assert res.removed == ()


@pytest.mark.parametrize(("user", "password"), [(None, None), ("GW1", "wrong"), ("nobody", "x")])
@pytest.mark.parametrize("tls", [False, True])
def test_unknown_or_anonymous_clients_are_refused(
    broker: Broker, user: str | None, password: str | None, tls: bool
) -> None:
    c = Client(broker, user, password, tls=tls)
    try:
        assert c.rc.is_failure
    finally:
        c.close()


def test_removed_gateway_loses_access_on_reload(broker: Broker, clients: list[Client]) -> None:
    before = parse_password_file((broker.auth / "gateways.passwd").read_text())
    res = write_files(broker.auth, [g for g in GATEWAYS if g != "GW3"], fixed=FIXED)
    assert res.removed == ("GW3",)
    assert res.created == ()
    after = parse_password_file((broker.auth / "gateways.passwd").read_text())
    assert after["GW1"] == before["GW1"]  # existing gateways keep their passwords
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while True:
        c = Client(broker, "GW3", tls=True)
        failed = c.rc.is_failure
        c.close()
        if failed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert failed
    assert not gateway(broker, clients, "GW1").rc.is_failure
    assert not connect(broker, clients, "suvnet-office").rc.is_failure


def test_password_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed")
    pw = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(pw), "alice", "s3cret"], check=True)
    (hashed,) = parse_password_file(pw.read_text()).values()
    assert check_password("s3cret", hashed)
    assert not check_password("other", hashed)
    m = re.match(r"^\$7\$(\d+)\$", hashed)
    assert m is not None
    assert hash_password("s3cret", iterations=int(m.group(1))).startswith(m.group(0))


def test_mqtt_acl_command_reads_the_registry(
    db: psycopg.Connection[Any], db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from suvnet.cli import main
    from suvnet.settings import get_settings

    db.execute(
        "INSERT INTO gateways (code, allowed) VALUES ('village-1', true), ('village-2', true),"
        " ('stolen-3', false)"
    )
    monkeypatch.setenv("SUVNET_DATABASE_URL", db_url)
    monkeypatch.setenv("SUVNET_MQTT_INGEST_PASSWORD", "from-env")
    get_settings.cache_clear()
    try:
        assert main(["mqtt", "acl", "--out", str(tmp_path), "--root", "acme"]) == 0
    finally:
        get_settings.cache_clear()
    acl = (tmp_path / "acl").read_text()
    assert "user village-1\ntopic write acme/v1/village-1/telemetry" in acl
    assert "stolen-3" not in acl
    office = parse_password_file((tmp_path / "passwd").read_text())
    assert set(office) == {"suvnet-ingest", "suvnet-api", "suvnet-office"}
    assert check_password("from-env", office["suvnet-ingest"])
    registered = {r[0] for r in db.execute("SELECT code FROM gateways WHERE allowed")}
    assert {"village-1", "village-2"} <= registered
    gws = parse_password_file((tmp_path / "gateways.passwd").read_text())
    assert set(gws) == registered  # every allowed gateway of the registry, no other
    creds = (tmp_path / "new-credentials.txt").read_text()
    assert "village-1 " in creds and "suvnet-ingest" not in creds
    for name in ("passwd", "gateways.passwd", "new-credentials.txt"):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0
