"""The MQTT link of an ingest worker: connect, subscribe, receive, acknowledge.

:class:`MqttLink` owns the paho client and its network loop (the ``ingest-mqtt`` thread). It
connects with a persistent session (MQTT 5: ``clean_start=False`` and a session expiry; MQTT
3.1.1: ``clean_session=False``) and ``manual_ack=True``, subscribes to the shared telemetry
subscription and to the (retained) gateway state topics, puts every message on the *received*
queue as an :class:`~ingest.queues.Incoming`, and reconnects with capped exponential backoff
and jitter. The writers hand it back what they committed (:meth:`MqttLink.send_acks`): the
broker's PUBACKs and the end-to-end acks to the gateways.

:class:`_IngestClient` is paho's client with a lean path for the one packet ingest receives
thousands of per second. It is the only place where ingest overrides a private paho method.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from queue import SimpleQueue
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.config import IngestConfig
from ingest.errors import BrokerError
from ingest.metrics import Metrics
from ingest.queues import Incoming, put_bounded
from ingest.validate import BatchKey
from suvnet.backoff import Backoff, BackoffPolicy
from suvnet.protocol import Ack, Topics, compress_ranges, encode_ack

log = logging.getLogger("ingest")


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_mqtt_url(url: str) -> BrokerAddress:
    """``mqtt://user:pass@host:1883`` or ``mqtts://host:8883``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise BrokerError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise BrokerError(f"MQTT URL {url!r} has no host name")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise BrokerError(f"MQTT URL {url!r} has an invalid port") from exc
    user = unquote(parts.username) if parts.username else None
    pw = unquote(parts.password) if parts.password else None
    return BrokerAddress(parts.hostname, port, tls, user, pw)


# ---------------------------------------------------------------- the paho override (lean path)
#
# Why: paho decodes every MQTT 5 PUBLISH into a Properties object, an MQTTMessage and a topic
# match over the callbacks, about 100 microseconds per message: half of the worker's CPU per
# message at full load. A plain QoS 1 PUBLISH (no properties: what Mosquitto forwards from the
# gateways) carries only a topic, a packet id and the payload, so _IngestClient reads those
# three itself and hands them to ``on_publish_fast``.
#
# What it relies on (paho's private internals; public API has no hook for this):
#   * ``_handle_publish()`` is what paho's packet dispatcher calls for each PUBLISH, and its
#     return code is the dispatcher's;
#   * ``_in_packet["command"]`` is the fixed header's first byte and ``_in_packet["packet"]``
#     the rest of the packet after the remaining length (topic length, topic, packet id,
#     property length, properties, payload);
#   * ``_protocol`` and ``_manual_ack`` hold the constructor's arguments;
#   * with ``manual_ack`` paho keeps no state for an incoming QoS 1 message (it calls
#     on_message and returns): so skipping paho's decoding skips nothing else. The PUBACK goes
#     out as always, after the commit, through the public ``ack()``.
# MqttLink.run also calls the private ``_reset_sockets()`` when the loop ends: paho closes its
# wake-up socket pair only when the client is garbage-collected.
#
# Checked against paho-mqtt 2.0.0 and 2.1.0 (their _handle_publish and _in_packet are the same,
# read in the sources) and 2.2.0 (installed here; its _handle_publish decodes through
# paho.mqtt._packet, the internals above are unchanged; the live tests run on it).
# pyproject pins paho-mqtt >= 2.1, < 3. Should a paho version lack these internals,
# ``lean_path_available()`` is False, MqttLink logs a warning naming the version at start, and
# every message takes paho's own path (correct, only slower); a packet the lean path cannot
# read (properties, QoS 0 or 2, MQTT 3.1.1, a topic that is not UTF-8) takes paho's path too.


class _IngestClient(mqtt.Client):
    """paho's client with a lean path for plain QoS 1 PUBLISH packets (see the note above)."""

    on_publish_fast: Callable[[str, bytes, int], None] | None = None
    """Called with (topic, payload, packet id) for each packet the lean path reads."""

    def lean_path_available(self) -> bool:
        """True when this paho version has the internals the lean path reads."""
        return (
            isinstance(getattr(self, "_in_packet", None), dict)
            and hasattr(self, "_protocol")
            and hasattr(self, "_manual_ack")
        )

    def _handle_publish(self) -> MQTTErrorCode:
        fast = self.on_publish_fast
        try:
            header = self._in_packet["command"]
            packet = self._in_packet["packet"]
            lean = (
                fast is not None
                and (header & 0x06) == 0x02  # QoS 1
                and self._protocol == mqtt.MQTTv5
                and self._manual_ack
            )
        except (AttributeError, KeyError, TypeError):  # another paho: its own path
            lean = False
        if lean and fast is not None:
            end = 2 + int.from_bytes(packet[0:2], "big")
            if len(packet) > end + 2 and packet[end + 2] == 0:  # property length 0
                try:
                    topic = bytes(packet[2:end]).decode()
                except UnicodeDecodeError:
                    return super()._handle_publish()
                fast(topic, bytes(packet[end + 3 :]), int.from_bytes(packet[end : end + 2], "big"))
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._handle_publish()


def _paho_version() -> str:
    try:
        return version("paho-mqtt")
    except PackageNotFoundError:
        return "(unknown version)"


class MqttLink:
    """The worker's connection to the broker (one paho client, one network thread).

    ``stop`` is the worker stopping (no more waiting on a full queue, no warning for the
    disconnect); ``leave`` is set once the writers have acknowledged all they committed: only
    then does :meth:`run` disconnect and return.
    """

    def __init__(
        self,
        broker: BrokerAddress,
        config: IngestConfig,
        topics: Topics,
        metrics: Metrics,
        received: SimpleQueue[Incoming],
        *,
        stop: threading.Event,
        leave: threading.Event,
    ) -> None:
        self.broker = broker
        self.config = config
        self.topics = topics
        self.metrics = metrics
        self.received = received
        self._stop = stop
        self._leave = leave
        self._limit = config.queue_size
        self.subscribed = threading.Event()
        """Set once the broker accepted the subscriptions."""
        self.gen = 0
        """Connection generation, one more at each connect (see Incoming.gen)."""
        self._gen_lock = threading.Lock()
        self.client = self.make_client()

    # --------------------------------------------------------------------------- client

    def make_client(self) -> _IngestClient:
        """A new paho client with this link's settings and callbacks."""
        v5 = self.config.mqtt_protocol == "5"
        client = _IngestClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            # MQTT 3.1.1: a persistent session (MQTT 5 uses clean_start and a session expiry)
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.max_queued_messages_set(0)
        # no in-flight window for the end-to-end acks: paho holds QoS 1 publishes beyond it
        # (20 by default) and writes them later, after PUBACKs queued meanwhile (send_acks)
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish_fast = self._on_publish_fast
        client.on_subscribe = self._on_subscribe
        if v5 and not client.lean_path_available():
            log.warning(
                "paho-mqtt %s lacks what ingest's fast MQTT path reads: every message takes "
                "paho's own path (correct, but about 100 us more CPU per message)",
                _paho_version(),
            )
        return client

    def connect_properties(self) -> Properties:
        """MQTT 5 CONNECT properties: the session expiry and Receive Maximum."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    def subscriptions(self) -> list[tuple[str, int]]:
        """The telemetry (shared unless turned off) and every gateway's state topic, QoS 1."""
        telemetry = (
            self.topics.telemetry_shared(self.config.group)
            if self.config.shared_subscription
            else f"{self.topics.root}/v1/+/telemetry"
        )
        return [(telemetry, 1), (self.topics.all_states(), 1)]

    # ------------------------------------------------------------------------ callbacks

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        with self._gen_lock:
            self.gen += 1
        self.metrics.mqtt_up.set(1)
        log.info(
            "connected to the broker",
            extra={"session_present": flags.session_present, "client_id": self.config.client_id},
        )
        client.subscribe(self.subscriptions())

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        bad = [r for r in reasons if r.is_failure]
        if bad:
            log.error("broker refused the subscriptions: %s", ", ".join(str(r) for r in bad))
            return
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.metrics.mqtt_up.set(0)
        if not self._stop.is_set():
            log.warning("broker connection lost: %s", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        put_bounded(
            self.received,
            Incoming(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.gen),
            self._limit,
            self._stop,
        )

    def _on_publish_fast(self, topic: str, payload: bytes, mid: int) -> None:
        """A QoS 1 message from the lean path of _IngestClient."""
        put_bounded(
            self.received, Incoming(topic, payload, mid, 1, self.gen), self._limit, self._stop
        )

    # ----------------------------------------------------------------- network loop, acks

    def run(self) -> None:
        """The network loop: connect, reconnect, and leave once ``leave`` is set."""
        try:
            self._loop()
        finally:
            # paho closes its wake-up socket pair only when the client is collected
            self.client._reset_sockets()

    def _connect(self) -> None:
        if self.config.mqtt_protocol == "5":
            self.client.connect(
                self.broker.host,
                self.broker.port,
                keepalive=30,
                clean_start=False,
                properties=self.connect_properties(),
            )
        else:
            self.client.connect(self.broker.host, self.broker.port, keepalive=30)

    def _loop(self) -> None:
        backoff = Backoff(BackoffPolicy(base=0.5, cap=30.0))
        client = self.client
        announced = False
        while not self._leave.is_set():
            try:
                self._connect()
            except OSError as exc:
                if not announced:
                    log.warning("broker not reachable, retrying: %s", exc)
                    announced = True
                self._leave.wait(backoff.next_delay())
                continue
            announced = False
            while not self._leave.is_set():
                if client.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS:
                    break
                if client.is_connected():
                    backoff.reset()
            else:
                # the writers have acked all they committed: leave cleanly (the rest is
                # redelivered to the next session)
                client.disconnect()
                for _ in range(20):
                    if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                        break
                return
            self._leave.wait(backoff.next_delay())

    def disconnect(self) -> None:
        """Drop the connection (the loop reconnects): the broker redelivers every message it
        has not had a PUBACK for."""
        self.client.disconnect()

    def send_acks(self, group: Sequence[Incoming], keys: set[BatchKey]) -> None:
        """Acknowledge committed messages: per gateway and boot, the end-to-end ack of the
        batches ``keys``, then a PUBACK for each message of ``group`` (only on the connection
        that delivered it).

        The order matters when the worker dies in between (SIGKILL, power): paho writes its
        packets to the connection in the order they were queued (the acks have no in-flight
        window to wait in, see make_client), so a message is released at the broker only
        after its batch's end-to-end ack has been written before it. A worker killed earlier
        leaves the message unacknowledged: the broker redelivers it to the next session, the
        batch is then a duplicate, and it is acked again. The other order could lose the
        end-to-end ack of a stored batch: the gateway would keep the batch, and re-send it,
        until its resend timer ran out."""
        by_boot: dict[tuple[str, str], list[int]] = {}
        for k in keys:
            by_boot.setdefault((k.gateway, k.boot), []).append(k.seq)
        for (gw, boot), seqs in by_boot.items():
            payload = encode_ack(Ack(boot, compress_ranges(seqs)))
            self.client.publish(self.topics.ack(gw), payload, qos=1)
        gen = self.gen
        for m in group:
            if m.gen == gen and m.qos > 0:
                self.client.ack(m.mid, m.qos)
