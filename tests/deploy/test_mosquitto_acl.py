"""The generated Mosquitto password and ACL files on a real Mosquitto.

The broker is started for this module on a free port with the production configuration
(deploy/mosquitto/mosquitto.conf: no anonymous clients, password file, ACL) reduced to one
plain listener and temporary paths.
"""

from __future__ import annotations

import getpass
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from dashboards.mqtt_acl import check_password, hash_password, parse_password_file, write_files

ROOT = Path(__file__).resolve().parents[2]
PROD_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="the mosquitto broker is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_config(tmp: Path, port: int, tls_port: int) -> str:
    """The production config with its ports, paths and log destination moved for a test run:
    the plain listener (services) on ``port``, the TLS listener (gateways) on ``tls_port``."""
    out = []
    for line in PROD_CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key in ("log_dest", "log_timestamp_format"):
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


test_config.__test__ = False  # type: ignore[attr-defined]


@dataclass
class Broker:
    port: int
    proc: subprocess.Popen[bytes]
    auth: Path
    log: Path
    passwords: dict[str, str]
    tls_port: int
    certs: Path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    tmp = tmp_path_factory.mktemp("mosquitto")
    (tmp / "data").mkdir()
    root = "suvnet"
    fixed = {"suvnet-office": "office-pass", "suvnet-ingest": "ingest-pass"}
    res = write_files(tmp / "auth", ["GW1", "GW2", "GW3"], root=root, fixed=fixed)
    passwords = dict(fixed)
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
    conf.write_text(test_config(tmp, port, tls_port))
    assert MOSQUITTO is not None
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                log = (tmp / "broker.log").read_text() if (tmp / "broker.log").exists() else ""
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


class Client:
    """A paho client (MQTT 5) that collects what it receives and its PUBACK reason codes."""

    def __init__(
        self, broker: Broker, user: str | None, password: str | None = None, tls: bool = False
    ) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.pubacks: dict[int, ReasonCode] = {}
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"t-{user}-{os.urandom(3).hex()}",
            protocol=mqtt.MQTTv5,
        )
        if user is not None:
            self.c.username_pw_set(
                user, password if password is not None else broker.passwords[user]
            )
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.c.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.c.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        if tls:
            self.c.tls_set(ca_certs=str(broker.certs / "server.crt"))
        self.c.connect("127.0.0.1", broker.tls_port if tls else broker.port)
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

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(broker: Broker) -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def connect(
    broker: Broker, clients: list[Client], user: str | None, password: str | None = None
) -> Client:
    c = Client(broker, user, password)
    clients.append(c)
    return c


def test_gateway_cannot_publish_under_another_gateways_topic(
    broker: Broker, clients: list[Client]
) -> None:
    office = connect(broker, clients, "suvnet-office")
    assert not office.rc.is_failure
    office.subscribe("suvnet/#")
    gw1 = connect(broker, clients, "GW1")
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
    gw1 = connect(broker, clients, "GW1")
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
    gw3 = connect(broker, clients, "GW3")
    gw3.subscribe("suvnet/v1/GW3/ack")
    assert not gw3.publish("suvnet/v1/GW3/telemetry", b"batch").is_failure
    assert ingest.received() == [("suvnet/v1/GW3/telemetry", b"batch")]
    assert not ingest.publish("suvnet/v1/GW3/ack", b"acked").is_failure
    assert ingest.publish("suvnet/v1/GW3/cmd", b"no").is_failure  # ingest sends no commands
    assert gw3.received() == [("suvnet/v1/GW3/ack", b"acked")]


def test_gateway_over_tls_on_the_gateway_listener(broker: Broker, clients: list[Client]) -> None:
    office = connect(broker, clients, "suvnet-office")
    office.subscribe("suvnet/v1/+/telemetry")
    gw = Client(broker, "GW2", tls=True)
    clients.append(gw)
    assert not gw.rc.is_failure
    assert not gw.publish("suvnet/v1/GW2/telemetry", b"over tls").is_failure
    assert gw.publish("suvnet/v1/GW1/telemetry", b"forged over tls").is_failure
    assert office.received() == [("suvnet/v1/GW2/telemetry", b"over tls")]


@pytest.mark.parametrize(("user", "password"), [(None, None), ("GW1", "wrong"), ("nobody", "x")])
def test_unknown_or_anonymous_clients_are_refused(
    broker: Broker, user: str | None, password: str | None
) -> None:
    c = Client(broker, user, password)
    try:
        assert c.rc.is_failure
    finally:
        c.close()


def test_removed_gateway_loses_access_on_reload(broker: Broker, clients: list[Client]) -> None:
    before = parse_password_file((broker.auth / "passwd").read_text())
    res = write_files(
        broker.auth,
        ["GW1", "GW2"],
        fixed={"suvnet-office": "office-pass", "suvnet-ingest": "ingest-pass"},
    )
    assert res.removed == ("GW3",)
    assert res.created == ()
    after = parse_password_file((broker.auth / "passwd").read_text())
    assert after["GW1"] == before["GW1"]  # existing gateways keep their passwords
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while True:
        c = Client(broker, "GW3")
        failed = c.rc.is_failure
        c.close()
        if failed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert failed
    assert not connect(broker, clients, "GW1").rc.is_failure


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
    users = parse_password_file((tmp_path / "passwd").read_text())
    assert set(users) == {"suvnet-ingest", "suvnet-api", "suvnet-office", "village-1", "village-2"}
    assert check_password("from-env", users["suvnet-ingest"])
    creds = (tmp_path / "new-credentials.txt").read_text()
    assert "village-1 " in creds and "suvnet-ingest" not in creds
    assert (tmp_path / "passwd").stat().st_mode & 0o077 == 0
    assert (tmp_path / "new-credentials.txt").stat().st_mode & 0o077 == 0
