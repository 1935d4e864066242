"""The MQTT link alone (ingest.link): the lean path of _IngestClient on hand-made packets (no
broker), and MqttLink on the real Mosquitto: what it puts on the queue, the acks it sends, and
the persistent session that gives back what was not acknowledged. No database, no worker."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from queue import SimpleQueue

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from ingest.config import IngestConfig
from ingest.link import MqttLink, _IngestClient, parse_mqtt_url
from ingest.metrics import Metrics
from ingest.queues import Incoming
from ingest.validate import BatchKey
from suvnet.protocol import Topics
from tests.ingest.conftest import (
    AckListener,
    Publisher,
    broker_host_port,
    make_config,
    wait_for,
)

# ------------------------------------------------------------------- the lean path, no broker


def _publish_packet(topic: bytes, mid: int | None, payload: bytes, props: bytes | None) -> bytes:
    """The bytes of a PUBLISH after its fixed header (what paho keeps in _in_packet)."""
    out = len(topic).to_bytes(2, "big") + topic
    if mid is not None:
        out += mid.to_bytes(2, "big")
    if props is not None:
        out += bytes([len(props)]) + props
    return out + payload


@dataclass
class _Seen:
    fast: list[tuple[str, bytes, int]] = field(default_factory=list)
    paho: list[tuple[int, int, bytes]] = field(default_factory=list)


def _client(
    protocol: MQTTProtocolVersion = mqtt.MQTTv5, *, manual_ack: bool = True
) -> tuple[_IngestClient, _Seen]:
    seen = _Seen()
    client = _IngestClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="lean-path-test",
        protocol=protocol,
        manual_ack=manual_ack,
    )
    client.on_publish_fast = lambda t, p, m: seen.fast.append((t, p, m))
    client.on_message = lambda c, u, msg: seen.paho.append((msg.qos, msg.mid, bytes(msg.payload)))
    return client, seen


def _feed(client: _IngestClient, command: int, packet: bytes) -> MQTTErrorCode:
    client._in_packet["command"] = command
    client._in_packet["packet"] = bytearray(packet)
    return client._handle_publish()


def test_a_plain_qos1_publish_takes_the_lean_path() -> None:
    client, seen = _client()
    pkt = _publish_packet(b"r/v1/gw1/telemetry", 513, b'{"v":1}', b"")
    assert _feed(client, 0x32, pkt) == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert seen.fast == [("r/v1/gw1/telemetry", b'{"v":1}', 513)]
    assert seen.paho == []
    # a redelivery (DUP flag) and a retained message are plain QoS 1 too
    assert _feed(client, 0x3B, pkt) == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert len(seen.fast) == 2


def test_what_the_lean_path_cannot_read_goes_through_paho() -> None:
    client, seen = _client()
    expiry = b"\x02\x00\x00\x00\x3c"  # message expiry interval 60 s: a property
    _feed(client, 0x32, _publish_packet(b"r/v1/gw1/telemetry", 7, b"with-props", expiry))
    _feed(client, 0x30, _publish_packet(b"r/v1/gw1/telemetry", None, b"qos0", b""))
    _feed(client, 0x32, _publish_packet("r/v1/gw\u00e9/telemetry".encode(), 8, b"utf8", b""))
    assert seen.paho == [(1, 7, b"with-props"), (0, 0, b"qos0")]
    assert seen.fast == [("r/v1/gw\u00e9/telemetry", b"utf8", 8)]
    # a topic that is not UTF-8 is left to paho as well
    _feed(client, 0x32, _publish_packet(b"r/v1/\xff/telemetry", 9, b"bad-topic", b""))
    assert [p for _, p, _ in seen.fast] == [b"utf8"]
    assert seen.paho[-1] == (1, 9, b"bad-topic")


def test_mqtt_311_or_automatic_acks_never_take_the_lean_path() -> None:
    client, seen = _client(mqtt.MQTTv311)
    _feed(client, 0x32, _publish_packet(b"r/v1/gw1/telemetry", 3, b"x", None))
    assert (seen.fast, seen.paho) == ([], [(1, 3, b"x")])
    # without manual_ack paho sends the PUBACK itself (queued here: there is no connection)
    client, seen = _client(manual_ack=False)
    _feed(client, 0x32, _publish_packet(b"r/v1/gw1/telemetry", 4, b"y", b""))
    assert (seen.fast, seen.paho) == ([], [(1, 4, b"y")])


@pytest.mark.parametrize("in_packet", [None, {"command": 0x32}, "missing"])
def test_a_paho_without_these_internals_gets_its_own_path(
    monkeypatch: pytest.MonkeyPatch, in_packet: object
) -> None:
    """Another paho keeps the packet elsewhere: the override hands over to paho's method."""
    client, seen = _client()
    calls: list[bool] = []

    def paho_own(self: mqtt.Client) -> MQTTErrorCode:
        calls.append(True)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    monkeypatch.setattr(mqtt.Client, "_handle_publish", paho_own)
    if in_packet == "missing":
        del client._in_packet
    else:
        client._in_packet = in_packet  # type: ignore[assignment]
    # (a dict without "packet" passes this check; the override still hands over)
    assert client.lean_path_available() == isinstance(in_packet, dict)
    assert client._handle_publish() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert calls == [True]
    assert seen.fast == []


# ------------------------------------------------------------------ MqttLink on Mosquitto


class _Link:
    """An MqttLink running in its own thread, as the worker runs it."""

    def __init__(self, mqtt_url: str, config: IngestConfig, topics: Topics) -> None:
        self.received: SimpleQueue[Incoming] = SimpleQueue()
        self.stop = threading.Event()
        self.leave = threading.Event()
        self.link = MqttLink(
            parse_mqtt_url(mqtt_url),
            config,
            topics,
            Metrics(),
            self.received,
            stop=self.stop,
            leave=self.leave,
        )
        self.thread = threading.Thread(target=self.link.run, name="test-link", daemon=True)
        self.thread.start()
        assert self.link.subscribed.wait(10), "the link did not subscribe"

    def take(self, n: int, timeout: float = 10.0) -> list[Incoming]:
        out: list[Incoming] = []
        end = time.monotonic() + timeout
        while len(out) < n:
            try:
                out.append(self.received.get(timeout=max(0.01, end - time.monotonic())))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self.stop.set()
        self.leave.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def _publish_with_property(mqtt_url: str, topic: str, payload: bytes) -> None:
    host, port = broker_host_port(mqtt_url)
    cmd = ["mosquitto_pub", "-h", host, "-p", str(port), "-q", "1", "-V", "mqttv5"]
    cmd += ["-D", "publish", "user-property", "site", "yangiobod", "-t", topic, "-s"]
    subprocess.run(cmd, input=payload, check=True, timeout=20)


@pytest.fixture
def link_config() -> IngestConfig:
    return make_config(session_expiry_s=30)


@pytest.fixture
def running_links(mqtt_url: str, topic_root: str) -> Iterator[list[_Link]]:
    links: list[_Link] = []
    yield links
    for lk in links:
        if lk.thread.is_alive():
            lk.close()


def test_the_link_queues_messages_and_sends_acks_after_the_fact(
    mqtt_url: str,
    topic_root: str,
    link_config: IngestConfig,
    running_links: list[_Link],
    publisher: Publisher,
    acks: AckListener,
) -> None:
    t = Topics(topic_root)
    lk = _Link(mqtt_url, link_config, t)
    running_links.append(lk)
    assert lk.link.gen == 1
    assert lk.link.metrics.mqtt_up._value.get() == 1
    for i in range(3):
        publisher.publish(t.telemetry("gw1"), f"m{i}".encode())
    publisher.publish(t.state("gw2"), b"birth")
    publisher.flush()
    # one with an MQTT 5 property (paho's own path) lands on the same queue
    _publish_with_property(mqtt_url, t.telemetry("gw2"), b"m-props")
    got = lk.take(5)
    assert sorted((m.topic, m.payload) for m in got) == sorted(
        [(t.telemetry("gw1"), f"m{i}".encode()) for i in range(3)]
        + [(t.state("gw2"), b"birth"), (t.telemetry("gw2"), b"m-props")]
    )
    assert {(m.qos, m.gen) for m in got} == {(1, 1)}
    assert len({m.mid for m in got if m.topic == t.telemetry("gw1")}) == 3

    # the end-to-end ack names the committed batches per gateway and boot, as seq ranges
    keys = {BatchKey(1, "gw1", "b1", s) for s in (4, 5, 6, 9)}
    lk.link.send_acks([m for m in got if m.payload == b"m0"], keys)
    wait_for(lambda: acks.acked("gw1", "b1") == {4, 5, 6, 9})
    assert [a.ranges for gw, a in acks.acks if gw == "gw1"] == [((4, 6), (9, 9))]
    lk.close()
    assert lk.link.metrics.mqtt_up._value.get() == 0


def test_what_was_not_acknowledged_comes_back_to_the_same_client_id(
    mqtt_url: str,
    topic_root: str,
    link_config: IngestConfig,
    running_links: list[_Link],
    publisher: Publisher,
) -> None:
    t = Topics(topic_root)
    first = _Link(mqtt_url, link_config, t)
    running_links.append(first)
    for i in range(4):
        publisher.publish(t.telemetry("gw1"), f"s{i}".encode())
    publisher.flush()
    got = first.take(4)
    assert len(got) == 4
    acked = [m for m in got if m.payload in (b"s0", b"s2")]
    first.link.send_acks(acked, set())  # PUBACKs only: no batch keys, no end-to-end ack
    time.sleep(0.3)  # the PUBACKs are written by the network loop
    first.close()

    again = _Link(mqtt_url, link_config, t)  # same client id: the session is still there
    running_links.append(again)
    back = again.take(2)
    assert sorted(m.payload for m in back) == [b"s1", b"s3"]
    assert again.link.gen == 1  # a new link, its first connection
    again.link.send_acks(back, set())
    assert again.take(1, timeout=1.0) == []


def test_an_ack_for_a_message_of_an_earlier_connection_is_not_sent(
    mqtt_url: str,
    topic_root: str,
    link_config: IngestConfig,
    running_links: list[_Link],
    publisher: Publisher,
) -> None:
    """A PUBACK goes out only on the connection that delivered the message: after a
    reconnect the broker delivers it again, and that delivery is the one to acknowledge."""
    t = Topics(topic_root)
    lk = _Link(mqtt_url, link_config, t)
    running_links.append(lk)
    publisher.publish(t.telemetry("gw1"), b"g1")
    publisher.flush()
    (m,) = lk.take(1)
    lk.link.disconnect()  # the loop reconnects (the worker does this after a crashed stage)
    (again,) = lk.take(1)  # delivered again on the new connection
    assert (again.payload, again.gen, m.gen) == (b"g1", 2, 1)
    lk.link.send_acks([m], set())  # of connection 1: not sent
    time.sleep(0.3)
    lk.close()
    lk2 = _Link(mqtt_url, link_config, t)
    running_links.append(lk2)
    (third,) = lk2.take(1)  # so the broker still has it
    assert third.payload == b"g1"
    lk2.link.send_acks([third], set())
    time.sleep(0.3)
    lk2.close()
    lk3 = _Link(mqtt_url, link_config, t)
    running_links.append(lk3)
    assert lk3.take(1, timeout=1.0) == []  # acknowledged now: nothing comes back


def test_subscriptions_shared_or_direct(topic_root: str) -> None:
    t = Topics(topic_root)
    shared = MqttLink(
        parse_mqtt_url("mqtt://127.0.0.1:1"),
        make_config(group="g7"),
        t,
        Metrics(),
        SimpleQueue(),
        stop=threading.Event(),
        leave=threading.Event(),
    )
    assert shared.subscriptions() == [(t.telemetry_shared("g7"), 1), (t.all_states(), 1)]
    assert t.telemetry_shared("g7").startswith("$share/g7/")
    direct = MqttLink(
        parse_mqtt_url("mqtt://127.0.0.1:1"),
        make_config(shared_subscription=False),
        t,
        Metrics(),
        SimpleQueue(),
        stop=threading.Event(),
        leave=threading.Event(),
    )
    assert direct.subscriptions()[0] == (f"{topic_root}/v1/+/telemetry", 1)
    props = shared.connect_properties().json()  # type: ignore[no-untyped-call]
    assert (props["SessionExpiryInterval"], props["ReceiveMaximum"]) == (120, 500)
    for lk in (shared, direct):
        lk.client._reset_sockets()


def test_stop_ends_a_link_that_never_reached_the_broker() -> None:
    received: SimpleQueue[Incoming] = SimpleQueue()
    stop, leave = threading.Event(), threading.Event()
    link = MqttLink(
        parse_mqtt_url("mqtt://127.0.0.1:1"),
        make_config(),
        Topics("x"),
        Metrics(),
        received,
        stop=stop,
        leave=leave,
    )
    th = threading.Thread(target=link.run, daemon=True)
    th.start()
    time.sleep(0.3)
    assert th.is_alive()  # retrying with backoff
    stop.set()
    leave.set()
    th.join(5)
    assert not th.is_alive()
    assert not link.subscribed.is_set()


def test_a_worker_killed_after_send_acks_has_sent_the_end_to_end_ack(
    mqtt_url: str,
    topic_root: str,
    link_config: IngestConfig,
    publisher: Publisher,
    acks: AckListener,
) -> None:
    """A worker killed right after send_acks must not leave a stored batch PUBACKed (released
    at the broker) but never acked end to end: the gateway would wait for its resend timer.
    Here the worker has many publishes in flight (paho's default window is 20) when it acks,
    and its connection is then cut as a kill cuts it: what was written reaches the broker,
    what paho still held is lost. The link's loop is driven by hand, so nothing else runs."""
    t = Topics(topic_root)
    link = MqttLink(
        parse_mqtt_url(mqtt_url),
        link_config,
        t,
        Metrics(),
        SimpleQueue(),
        stop=threading.Event(),
        leave=threading.Event(),
    )
    client = link.client

    def turn(until: Callable[[], bool], what: str) -> None:
        end = time.monotonic() + 10
        while not until():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            assert client.loop(timeout=0.05) == MQTTErrorCode.MQTT_ERR_SUCCESS

    try:
        link._connect()
        turn(link.subscribed.is_set, "the subscription")
        publisher.publish(t.telemetry("gw1"), b"batch-7")
        publisher.flush()
        turn(lambda: not link.received.empty(), "the message")
        m = link.received.get()
        assert m.payload == b"batch-7"
        for i in range(30):  # acks of other gateways, their PUBACKs not read yet
            link.send_acks([], {BatchKey(2, "gw-other", "b0", i)})

        link.send_acks([m], {BatchKey(1, "gw1", "b1", 7)})
        sock = client.socket()
        assert isinstance(sock, socket.socket)
        # killed now: what paho has written reaches the broker (in order), what it still
        # holds is lost. (shutdown, not close: a close with the broker's unread PUBACKs in
        # the receive buffer resets the connection, and then neither may arrive)
        sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: acks.acked("gw1", "b1") == {7}, timeout=10)
    finally:
        client._reset_sockets()
