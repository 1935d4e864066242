"""The ingest worker: MQTT in, PostgreSQL out (the thin I/O shell around validate/store).

Four named, supervised threads:

* ``ingest-mqtt``: the paho network loop. It connects with a persistent session (MQTT 5,
  ``clean_start=False``, a session expiry) and ``manual_ack=True``, subscribes to the shared
  telemetry subscription and to the (retained) gateway state topics, and puts every message on
  a bounded queue. It reconnects with capped exponential backoff and jitter.
* ``ingest-decoder``: takes messages off the queue and validates them (pure), ahead of the
  writer, into a second bounded queue.
* ``ingest-writer-1`` .. ``ingest-writer-N`` (``writers``, each with its own database
  connection): take validated messages and commit groups of up to ``batch_max_rows``
  readings or ``batch_max_delay_s``, or sooner when no message has come for
  ``batch_linger_s``. While one writer's transaction is in the database, the next writer
  forms and sends the next group. Only after the commit are the messages acknowledged to the
  broker and the end-to-end acks published to the gateways, and always in the order the
  messages came (ingest.order.TurnOrder); a group with a gateway state message waits until
  every earlier group is committed, so state changes apply in arrival order. When the
  database fails a writer keeps its group in hand and retries with backoff; it takes nothing
  new meanwhile, so the queue fills and the broker stops sending (see overflow policy below).
* ``ingest-maintenance``: rollups, online/offline freshness, partitions and pruning.

Overflow policy of the queue: its size equals the MQTT Receive Maximum announced to the broker,
so the broker never has more unacknowledged messages in flight than fit. Should a broker send
more anyway, the network thread blocks on the full queue (TCP backpressure): nothing is dropped.
"""

from __future__ import annotations

import functools
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.config import IngestConfig
from ingest.errors import BrokerError, IngestError
from ingest.metrics import Metrics
from ingest.order import TurnOrder
from ingest.store import ensure_partitions as ensure_partitions_sql
from ingest.store import (
    flush_seen,
    load_registry,
    mark_stale,
    pack_rows,
    prepare,
    prune_batches,
    run_rollups,
    write_dead_letters,
    write_group,
)
from ingest.validate import (
    BatchKey,
    Checked,
    DeadLetter,
    Registry,
    Window,
    check_state,
    check_telemetry,
    newest_per_device,
    warm_up_scanner,
)
from suvnet.backoff import Backoff, BackoffPolicy
from suvnet.protocol import Ack, Topics, compress_ranges, encode_ack
from suvnet.registry import RegistryError, note_config_hash, record_gateway_config

log = logging.getLogger("ingest")

APP_NAME = "suvnet-ingest"
"""application_name of the worker's database connections."""


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


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    gen: int
    """Connection generation: a message is acked only on the connection that delivered it."""


class _IngestClient(mqtt.Client):
    """paho's client with a lean path for the packet ingest receives thousands of per second.

    paho decodes every MQTT 5 PUBLISH into a Properties object, an MQTTMessage and a topic
    match over the callbacks: about half of the worker's cost per message. A QoS 1 PUBLISH
    without properties (what Mosquitto forwards from the gateways) is handed straight to
    ``on_publish_fast`` instead; anything else (properties, QoS 0/2, MQTT 3.1.1, a topic that
    is not UTF-8) takes paho's own path. With ``manual_ack`` paho keeps no state for an
    incoming QoS 1 message, so nothing is skipped but the decoding; the ack is sent as always,
    after the commit, with ``ack()``.
    """

    on_publish_fast: Callable[[str, bytes, int], None] | None = None

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
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("paho-mqtt")
    except PackageNotFoundError:
        return "(unknown version)"


class _StopError(Exception):
    """Raised inside a background task to end it when the worker stops."""


class IngestWorker:
    """One ingest worker. ``start()`` runs it in background threads; ``stop()`` ends it."""

    def __init__(
        self,
        database_url: str,
        mqtt_url: str,
        config: IngestConfig,
        *,
        topic_root: str = "suvnet",
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.database_url = database_url
        self.broker = parse_mqtt_url(mqtt_url)
        self.config = config
        self.topics = Topics(root=topic_root)
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.window = Window(config.max_age_s, config.max_future_s)
        # SimpleQueue (C, no Condition objects: a fraction of queue.Queue's cost per message),
        # bounded by _put_bounded
        self._q: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._checked: queue.SimpleQueue[tuple[Incoming, Checked]] = queue.SimpleQueue()
        self._held: dict[int, int] = {}
        """Messages each writer holds (taken off the queue, not yet acknowledged)."""
        self._collect_lock = threading.Lock()
        self._order = TurnOrder()
        self._tls = threading.local()
        self._seen_lock = threading.Lock()
        self._stop = threading.Event()
        self._writer_done = threading.Event()
        self._subscribed = threading.Event()
        self._db_ok = threading.Event()
        self._registry_ready = threading.Event()
        self._config_hashes: dict[str, str] = {}
        """Gateway -> the configuration hash last checked or noted (skips health updates)."""
        self._gen = 0
        self._gen_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._registry = Registry()
        self._client = self._make_client()
        self._devices_seen: dict[int, int] = {}
        self._gateways_seen: dict[int, int] = {}
        self._last_flush = 0.0
        self._metrics_server: Any = None
        self._wconns: dict[int, psycopg.Connection[Any]] = {}
        self._mconn: psycopg.Connection[Any] | None = None

    # ------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.config.metrics_port:
            from prometheus_client import start_http_server

            try:
                self._metrics_server, _ = start_http_server(
                    self.config.metrics_port,
                    addr=self.config.metrics_addr,
                    registry=self.metrics.registry,
                )
            except OSError as exc:
                raise IngestError(
                    f"cannot serve metrics on {self.config.metrics_addr}:"
                    f"{self.config.metrics_port} ({exc.strerror or exc}); choose another "
                    "--metrics-port, or 0 to turn metrics off"
                ) from exc
            log.info(
                "metrics on http://%s:%d/metrics",
                self.config.metrics_addr,
                self.config.metrics_port,
            )
        tasks: list[tuple[str, Callable[[], None]]] = [("ingest-decoder", self._decoder_loop)]
        tasks += [
            (f"ingest-writer-{n}", functools.partial(self._writer_loop, n))
            for n in range(1, self.config.writers + 1)
        ]
        tasks += [("ingest-mqtt", self._mqtt_loop), ("ingest-maintenance", self._maintenance_loop)]
        for name, fn in tasks:
            t = threading.Thread(target=self._supervise, args=(name, fn), name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """True once subscribed on the broker and connected to the database."""
        end = time.monotonic() + timeout
        return self._subscribed.wait(timeout) and self._db_ok.wait(max(0.0, end - time.monotonic()))

    def stop(self, timeout: float = 15.0) -> None:
        """Finish the group in hand (commit and ack), then disconnect."""
        self._stop.set()
        for t in self._threads:
            if t.name.startswith("ingest-writer"):
                t.join(timeout)
        # only now may the network thread leave: every commit so far has been acked
        self._writer_done.set()
        for t in self._threads:
            t.join(timeout)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()

    def run_until(self, stop: threading.Event) -> None:
        """Run in the foreground until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT)."""
        self.start()
        while not stop.wait(0.5):
            if self._stop.is_set():
                break
        self.stop()

    def _supervise(self, name: str, fn: Callable[[], None]) -> None:
        backoff = Backoff(BackoffPolicy(base=0.5, cap=30.0))
        while not self._stop.is_set():
            try:
                fn()
                return
            except _StopError:
                return
            except Exception:
                self.metrics.task_restarts.labels(name).inc()
                log.exception("task %s crashed; restarting it", name)
                if name.startswith(("ingest-decoder", "ingest-writer")):
                    # messages it held are neither committed nor acked: reconnect, so that the
                    # broker delivers them again (the rest is deduplicated)
                    self._client.disconnect()
                if self._stop.wait(backoff.next_delay()):
                    return

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _StopError

    # ----------------------------------------------------------------------------- mqtt

    def _make_client(self) -> _IngestClient:
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

    def _connect_props(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        return props

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
            self._gen += 1
        self.metrics.mqtt_up.set(1)
        log.info(
            "connected to the broker",
            extra={"session_present": flags.session_present, "client_id": self.config.client_id},
        )
        client.subscribe(
            [
                (
                    self.topics.telemetry_shared(self.config.group)
                    if self.config.shared_subscription
                    else f"{self.topics.root}/v1/+/telemetry",
                    1,
                ),
                (self.topics.all_states(), 1),
            ]
        )

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
        self._subscribed.set()

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
        self._put_bounded(
            self._q, Incoming(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._gen)
        )

    def _on_publish_fast(self, topic: str, payload: bytes, mid: int) -> None:
        """A QoS 1 message from the lean path of _IngestClient."""
        self._put_bounded(self._q, Incoming(topic, payload, mid, 1, self._gen))

    def _put_bounded(self, q: queue.SimpleQueue[Any], item: Any) -> None:
        """Queue an item; then, while the queue holds ``queue_size`` items or more, wait.

        Overflow policy: the network thread waits (TCP backpressure), nothing is dropped. The
        broker sends no more than Receive Maximum unacknowledged messages, so with the queue
        as long as that this wait is only a safety net.
        """
        q.put(item)
        limit = self.config.queue_size
        while q.qsize() >= limit and not self._stop.is_set():
            time.sleep(0.002)

    def _mqtt_loop(self) -> None:
        try:
            self._mqtt_body()
        finally:
            # paho closes its wake-up socket pair only when the client is collected
            self._client._reset_sockets()

    def _mqtt_body(self) -> None:
        backoff = Backoff(BackoffPolicy(base=0.5, cap=30.0))
        client = self._client
        announced = False
        while not self._writer_done.is_set():
            try:
                if self.config.mqtt_protocol == "5":
                    client.connect(
                        self.broker.host,
                        self.broker.port,
                        keepalive=30,
                        clean_start=False,
                        properties=self._connect_props(),
                    )
                else:
                    client.connect(self.broker.host, self.broker.port, keepalive=30)
            except OSError as exc:
                if not announced:
                    log.warning("broker not reachable, retrying: %s", exc)
                    announced = True
                self._writer_done.wait(backoff.next_delay())
                continue
            announced = False
            while not self._writer_done.is_set():
                if client.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS:
                    break
                if client.is_connected():
                    backoff.reset()
            else:
                # the writer has acked all it committed: leave cleanly (the rest is redelivered)
                client.disconnect()
                for _ in range(20):
                    if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                        break
                return
            self._writer_done.wait(backoff.next_delay())

    def _ack(self, group: Sequence[Incoming], keys: set[BatchKey]) -> None:
        """Acknowledge committed messages: at once outside a writer group, else when the
        group's turn comes (see TurnOrder)."""
        pending: list[tuple[Sequence[Incoming], set[BatchKey]]] | None = getattr(
            self._tls, "pending", None
        )
        if pending is None:
            self._send_acks(group, keys)
        else:
            pending.append((group, keys))

    def _send_all_acks(self, acks: list[tuple[Sequence[Incoming], set[BatchKey]]]) -> None:
        for group, keys in acks:
            self._send_acks(group, keys)

    def _send_acks(self, group: Sequence[Incoming], keys: set[BatchKey]) -> None:
        gen = self._gen
        for m in group:
            if m.gen == gen and m.qos > 0:
                self._client.ack(m.mid, m.qos)
        by_boot: dict[tuple[str, str], list[int]] = {}
        for k in keys:
            by_boot.setdefault((k.gateway, k.boot), []).append(k.seq)
        for (gw, boot), seqs in by_boot.items():
            payload = encode_ack(Ack(boot, compress_ranges(seqs)))
            self._client.publish(self.topics.ack(gw), payload, qos=1)

    # --------------------------------------------------------------------------- writer

    def _connect_db(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.database_url, autocommit=True, connect_timeout=10, application_name=APP_NAME
        )
        prepare(conn)
        return conn

    def _check(self, m: Incoming, now_ms: int) -> Checked:
        reg = self._registry
        if m.topic.endswith("/telemetry"):
            out = check_telemetry(m.topic, m.payload, self.topics, reg, now_ms, self.window)
        else:
            out = check_state(m.topic, m.payload, self.topics, reg)
        out.registry_at = reg.loaded_at
        return out

    def _decoder_loop(self) -> None:
        """Validate messages ahead of the writer, so decoding overlaps database round trips."""
        warm_up_scanner()
        while not self._registry_ready.wait(0.5):
            if self._stop.is_set():
                return
        counters: dict[str, Any] = {}
        counts: dict[str, int] = {}
        while not self._stop.is_set():
            try:
                m = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            kind = "telemetry" if m.topic.endswith("/telemetry") else "state"
            counts[kind] = counts.get(kind, 0) + 1
            it = self._check(m, int(self.clock() * 1000))
            if it.rows and it.packed is None:
                it.packed = pack_rows(it.rows)
            self._put_bounded(self._checked, (m, it))
            if self._q.empty() or sum(counts.values()) >= 100:
                # the message counters, now and then rather than per message
                for k, n in counts.items():
                    self._counter(counters, k).inc(n)
                counts.clear()

    def _counter(self, counters: dict[str, Any], kind: str) -> Any:
        counter = counters.get(kind)
        if counter is None:
            counter = counters[kind] = self.metrics.messages.labels(kind)
        return counter

    def in_memory(self) -> int:
        """Messages received and not yet acknowledged (queued, validated or being written)."""
        return self._q.qsize() + self._checked.qsize() + sum(self._held.values())

    def _collect(self, writer: int) -> tuple[list[Incoming], list[Checked], int]:
        """The next group off the queue and its ticket (one writer at a time, so groups are
        runs of the queue and tickets follow it)."""
        with self._collect_lock:
            group, items = self._collect_group()
            self._held[writer] = len(group)
            return group, items, (self._order.take() if group else -1)

    def _collect_group(self) -> tuple[list[Incoming], list[Checked]]:
        try:
            m, it = self._checked.get(timeout=0.2)
        except queue.Empty:
            return [], []
        group, items = [m], [it]
        rows = len(it.rows)
        deadline = time.monotonic() + self.config.batch_max_delay_s
        linger = self.config.batch_linger_s
        while rows < self.config.batch_max_rows and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    m, it = self._checked.get_nowait()
                else:
                    # nothing new for `linger`: the burst is over, commit what is in hand
                    m, it = self._checked.get(timeout=min(remaining, linger))
            except queue.Empty:
                break
            group.append(m)
            items.append(it)
            rows += len(it.rows)
            if remaining <= 0:
                break
        return group, items

    def _writer_loop(self, writer: int = 1) -> None:
        try:
            self._writer_body(writer)
        finally:
            self._held[writer] = 0
            conn = self._wconns.pop(writer, None)
            if conn is not None:
                conn.close()

    def _writer_body(self, writer: int) -> None:
        conn: psycopg.Connection[Any] | None = None
        backoff = Backoff(BackoffPolicy(base=0.2, cap=10.0))
        down_since: float | None = None
        while True:
            # (re)connect and refresh the registry
            if conn is None or conn.closed:
                try:
                    conn = self._wconns[writer] = self._connect_db()
                    self._registry = load_registry(conn, self.config.default_poll_period_s)
                    self._registry_ready.set()
                except psycopg.Error as exc:
                    conn = None
                    self._db_down(exc, down_since)
                    down_since = down_since or time.monotonic()
                    if self._stop.wait(backoff.next_delay()):
                        return
                    continue
                self._db_up(down_since)
                down_since = None
                backoff.reset()
            if self._stop.is_set():
                # what is still queued is not acked: the broker delivers it again
                self._flush_seen(conn, force=True)
                return
            if time.monotonic() - self._registry.loaded_at > self.config.registry_refresh_s:
                self._reload_registry(conn)
            group, items, ticket = self._collect(writer)
            # the time the group is written at (not the time before waiting for it: a re-check
            # below judges timestamps by it, and a compressed demo clock moves hours meanwhile)
            now_ms = int(self.clock() * 1000)
            self.metrics.queue_depth.set(self.in_memory())
            if not group:
                self._flush_seen(conn)
                continue
            # from here on the ticket must be finished whatever happens, or the groups after
            # it would never be acknowledged
            pending: list[tuple[Sequence[Incoming], set[BatchKey]]] = []
            self._tls.pending = pending
            try:
                if any(it.unknown_ids for it in items):
                    # an id the registry did not know: perhaps just registered. Reload (at most
                    # every 2 s) and check again what was checked with an older snapshot.
                    if time.monotonic() - self._registry.loaded_at > 2.0:
                        self._reload_registry(conn)
                    at = self._registry.loaded_at
                    items = [
                        self._check(m, now_ms) if it.unknown_ids and it.registry_at < at else it
                        for m, it in zip(group, items, strict=True)
                    ]
                got = self._write_one_group(writer, conn, group, items, ticket, now_ms)
            finally:
                self._tls.pending = None
                self._order.finish(
                    ticket,
                    functools.partial(self._send_all_acks, list(pending)) if pending else None,
                )
                self._held[writer] = 0
            if got is None:
                return  # told to stop before the group was in
            conn = got
            self._flush_seen(conn)

    def _write_one_group(  # noqa: PLR0917
        self,
        writer: int,
        conn: psycopg.Connection[Any] | None,
        group: list[Incoming],
        items: list[Checked],
        ticket: int,
        now_ms: int,
    ) -> psycopg.Connection[Any] | None:
        """Commit one group, retrying until it is in; None when told to stop first."""
        backoff = Backoff(BackoffPolicy(base=0.2, cap=10.0))
        down_since: float | None = None
        # gateway state changes are applied in arrival order: wait for the earlier groups
        if any(it.state is not None for it in items) and not self._order.wait_turn(
            ticket, self._stop
        ):
            return None
        while True:
            try:
                if conn is None or conn.closed:
                    conn = self._wconns[writer] = self._connect_db()
                self._commit(conn, group, items, now_ms)
                break
            except psycopg.OperationalError as exc:
                if conn is not None:
                    conn.close()
                self.metrics.db_failures.inc()
                if down_since is None:
                    self._db_down(exc, None)
                    down_since = time.monotonic()
                if self._stop.wait(backoff.next_delay()):
                    # not committed, not acked: the broker redelivers to the next worker
                    return None
            except psycopg.Error as exc:
                # a message the database refuses (e.g. registry changed): isolate it
                log.warning("write refused (%s); writing the group message by message", exc)
                if conn is not None and conn.closed:
                    continue
                assert conn is not None
                self._commit_one_by_one(conn, group, items, now_ms)
                break
        if down_since is not None:
            self._db_up(down_since)
        return conn

    def _reload_registry(self, conn: psycopg.Connection[Any]) -> None:
        """Re-read the registry; on a database error keep the old snapshot (the commit that
        follows meets the same error and retries)."""
        try:
            self._registry = load_registry(conn, self.config.default_poll_period_s)
        except psycopg.Error as exc:
            log.debug("registry reload failed, keeping the previous snapshot: %s", exc)

    def _db_down(self, exc: Exception, since: float | None) -> None:
        self.metrics.db_up.set(0)
        if since is None:
            log.warning(
                "database unavailable; holding %d message(s) unacknowledged, retrying: %s",
                self.in_memory(),
                str(exc).strip(),
            )

    def _db_up(self, since: float | None) -> None:
        self.metrics.db_up.set(1)
        self._db_ok.set()
        if since is not None:
            log.info("database available again after %.1f s", time.monotonic() - since)

    def _commit(
        self,
        conn: psycopg.Connection[Any],
        group: Sequence[Incoming],
        items: Sequence[Checked],
        now_ms: int,
    ) -> None:
        t0 = time.perf_counter()
        res = write_group(conn, items, now_ms)
        dt = time.perf_counter() - t0
        m = self.metrics
        m.commits.inc()
        m.commit_seconds.observe(dt)
        m.readings.inc(res.rows_inserted)
        m.duplicate_readings.inc(res.rows_offered - res.rows_inserted)
        m.duplicate_batches.inc(res.duplicate_messages)
        for reason, n in res.dead_by_reason.items():
            m.dead_letters.labels(reason).inc(n)
        self._ack(group, res.new_keys | res.duplicate_keys)
        self._check_gateway_configs(conn, items, now_ms)
        commit_ms = int(self.clock() * 1000)
        newest: int | None = None
        seen: dict[int, int] = {}
        pairs: list[Any] = []
        for it in items:
            if it.sent_ms is not None and it.key in res.new_keys:
                lat = max(0.0, (commit_ms - it.sent_ms) / 1000)
                m.latency.observe(lat)
                newest = it.sent_ms if newest is None else max(newest, it.sent_ms)
            for dev, ts in it.device_seen.items():
                if ts > seen.get(dev, -1):
                    seen[dev] = ts
            if it.seen_pairs is not None:
                pairs.append(it.seen_pairs)
        # the scanner's (device, ts) arrays merged once per group, not per message
        seen = newest_per_device(pairs, seen)
        with self._seen_lock:
            for dev, ts in seen.items():
                if ts > self._devices_seen.get(dev, -1):
                    self._devices_seen[dev] = ts
            for it in items:
                if it.key is not None:
                    self._gateways_seen[it.key.gateway_id] = now_ms
        if newest is not None:
            m.lag.set(max(0.0, (commit_ms - newest) / 1000))

    def _check_gateway_configs(
        self, conn: psycopg.Connection[Any], items: Sequence[Checked], now_ms: int
    ) -> None:
        """A birth names every device the gateway polls and the points it publishes: check
        them against the registry, store the outcome (``gateway_config``) and log a change of
        it. A health update names only their hash: a configuration whose birth the office
        never saw is marked unchecked. The readings are already committed and acknowledged;
        a failure here is logged, and the next birth checks again."""
        for it in items:
            msg = it.state
            if msg is None or it.state_gateway_id is None or msg.state != "online":
                continue
            if msg.points is None and (
                msg.points_hash is None or self._config_hashes.get(msg.gateway) == msg.points_hash
            ):
                continue  # a health update of the configuration this worker has seen
            now = datetime.fromtimestamp(now_ms / 1000, UTC)
            try:
                with conn.transaction():
                    if msg.points is not None:
                        at = datetime.fromtimestamp(min(msg.ts_ms, now_ms) / 1000, UTC)
                        check, news = record_gateway_config(
                            conn, msg.gateway, msg.points, boot=msg.boot, announced_at=at, now=now
                        )
                        if news:
                            log.log(
                                logging.INFO if check.ok else logging.WARNING,
                                "%s",
                                check.describe(),
                            )
                        self._config_hashes[msg.gateway] = check.points_hash
                    elif msg.points_hash is not None:
                        if note_config_hash(conn, msg.gateway, msg.points_hash, now):
                            log.warning(
                                "gateway %s runs a configuration (%s) whose birth message this "
                                "office has not seen: its devices and points are checked at its "
                                "next connect",
                                msg.gateway,
                                msg.points_hash,
                            )
                        self._config_hashes[msg.gateway] = msg.points_hash
            except (psycopg.Error, RegistryError) as exc:
                log.warning(
                    "could not check the configuration gateway %s announced: %s", msg.gateway, exc
                )

    def _commit_one_by_one(
        self,
        conn: psycopg.Connection[Any],
        group: Sequence[Incoming],
        items: Sequence[Checked],
        now_ms: int,
    ) -> None:
        for m, it in zip(group, items, strict=True):
            try:
                self._commit(conn, [m], [it], now_ms)
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                dead = [
                    DeadLetter(
                        m.topic,
                        m.payload[:1_048_576],
                        "db_rejected",
                        str(exc).strip()[:2000],
                        it.key.gateway if it.key else None,
                    )
                ]
                with conn.transaction():
                    write_dead_letters(conn, dead)
                self.metrics.dead_letters.labels("db_rejected").inc()
                self._ack([m], set())

    def _flush_seen(self, conn: psycopg.Connection[Any], *, force: bool = False) -> None:
        with self._seen_lock:
            if not force and time.monotonic() - self._last_flush < self.config.state_flush_s:
                return
            self._last_flush = time.monotonic()
            if not self._devices_seen and not self._gateways_seen:
                return
            devs, gws = self._devices_seen, self._gateways_seen
            self._devices_seen, self._gateways_seen = {}, {}
        try:
            n_dev, n_gw = flush_seen(
                conn,
                devs,
                gws,
                self._registry,
                factor=self.config.offline_factor,
                default_period_s=self.config.default_poll_period_s,
                now_ms=int(self.clock() * 1000),
            )
        except psycopg.Error as exc:
            log.debug("last-seen flush failed, keeping it for later: %s", exc)
            with self._seen_lock:
                for mine, old in ((self._devices_seen, devs), (self._gateways_seen, gws)):
                    for k, ts in old.items():
                        if ts > mine.get(k, -1):
                            mine[k] = ts
            return
        if n_dev:
            self.metrics.state_changes.labels("device", "online").inc(n_dev)
            log.info("%d device(s) online (data received)", n_dev)
        if n_gw:
            self.metrics.state_changes.labels("gateway", "online").inc(n_gw)
            log.info("%d gateway(s) online (data received)", n_gw)

    # ---------------------------------------------------------------------- maintenance

    def _maintenance_loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        try:
            self._maintenance_body(lambda c: None if c is None else setattr(self, "_mconn", c))
        finally:
            conn = self._mconn
            if conn is not None:
                conn.close()

    def _maintenance_body(self, keep: Callable[[psycopg.Connection[Any] | None], None]) -> None:
        conn: psycopg.Connection[Any] | None = None
        backoff = Backoff(BackoffPolicy(base=1.0, cap=60.0))
        due = {"partitions": 0.0, "prune": 0.0, "rollups": 0.0, "freshness": 0.0}
        every = {
            "partitions": 3600.0,
            "prune": 6 * 3600.0,
            "rollups": self.config.maintenance_interval_s,
            "freshness": self.config.maintenance_interval_s,
        }
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(
                        self.database_url,
                        autocommit=True,
                        connect_timeout=10,
                        application_name=APP_NAME + "-maintenance",
                    )
                    keep(conn)
                for task, when in due.items():
                    if time.monotonic() >= when:
                        self.run_task(conn, task)
                        due[task] = time.monotonic() + every[task]
                backoff.reset()
            except psycopg.Error as exc:
                log.debug("maintenance waits for the database: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None
                self._sleep(backoff.next_delay())
                continue
            self._sleep(1.0)

    def run_task(self, conn: psycopg.Connection[Any], task: str) -> None:
        """Run one maintenance task now (``rollups``, ``freshness``, ``partitions``, ``prune``)."""
        now_ms = int(self.clock() * 1000)
        if task == "rollups":
            n = run_rollups(conn)
            self.metrics.rollup_buckets.inc(n)
        elif task == "freshness":
            gone = mark_stale(
                conn,
                factor=self.config.offline_factor,
                default_period_s=self.config.default_poll_period_s,
                now_ms=now_ms,
            )
            for what in gone:
                kind, _, code = what.partition(":")
                self.metrics.state_changes.labels(kind, "offline").inc()
                log.info("%s %s offline (no fresh data)", kind, code)
        elif task == "partitions":
            month = 31 * 86_400_000
            made = ensure_partitions_sql(conn, now_ms - month, now_ms + 3 * month)
            if made:
                log.info("created %d readings partition(s)", made)
        elif task == "prune":
            prune_batches(conn, keep_days=self.config.batch_retention_days, now_ms=now_ms)
        else:
            raise ValueError(f"unknown maintenance task {task!r}")
