"""The write stage of an ingest worker: groups of checked messages committed, then acknowledged.

:class:`Writers` runs ``writers`` threads (``ingest-writer-1`` .. ``-N``), each with its own
database connection. A writer takes a group off the *decoded* queue (up to ``batch_max_rows``
readings or ``batch_max_delay_s``, or less once nothing has come for ``batch_linger_s``) under
one lock, so a group is a run of consecutive messages, and gets a ticket
(:class:`~ingest.order.TurnOrder`). It commits the group (:func:`ingest.store.write_group`);
only after the commit are the messages acknowledged to the broker and the end-to-end acks sent,
through the ``send_acks`` it was given (the MQTT link's), strictly in ticket order. A group
with a gateway state message waits until every earlier group is committed, so state changes
apply in arrival order. When the database fails a writer keeps its group in hand and retries
with backoff; it takes nothing new meanwhile, so the queue fills and the broker stops sending.
A message the database refuses is isolated (the group is written message by message) and
dead-lettered as ``db_rejected``.

After each commit the writer checks the gateways' announced configurations
(:mod:`ingest.gateway_config`) and notes the devices' and gateways' last-seen times
(:class:`LastSeen`), which are written every ``state_flush_s``.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any

import psycopg

from ingest.config import APP_NAME, IngestConfig
from ingest.decode import UNKNOWN_ID_RELOAD_S, Decoder, RegistryCache
from ingest.gateway_config import GatewayConfigCheck
from ingest.metrics import Metrics
from ingest.order import TurnOrder
from ingest.queues import Incoming
from ingest.reasons import DeadLetterReason
from ingest.store import (
    GroupResult,
    flush_seen,
    prepare,
    write_dead_letters,
    write_group,
)
from ingest.validate import BatchKey, Checked, DeadLetter, Registry, newest_per_device
from suvnet.backoff import Backoff, BackoffPolicy

log = logging.getLogger("ingest")

Conn = psycopg.Connection[Any]
AckSink = Callable[[Sequence[Incoming], set[BatchKey]], None]
"""Sends the acknowledgements of committed messages and the batch keys to ack end to end."""
CommitStep = Callable[[Conn, Sequence[Incoming], Sequence[Checked], int], None]
"""Commits one group: (connection, messages, their checks, now_ms)."""
_Acks = list[tuple[Sequence[Incoming], set[BatchKey]]]


class LastSeen:
    """Newest data time per device and last message time per gateway, gathered at each
    commit and written (bringing devices and gateways online) every ``every_s``."""

    def __init__(self, *, every_s: float, factor: float, default_period_s: float) -> None:
        self.every_s = every_s
        self.factor = factor
        self.default_period_s = default_period_s
        self._lock = threading.Lock()
        self.devices: dict[int, int] = {}
        self.gateways: dict[int, int] = {}
        self._last_flush = 0.0

    def note(self, items: Sequence[Checked], now_ms: int) -> None:
        """Take the last-seen times of a committed group (gateways: ``now_ms``)."""
        seen: dict[int, int] = {}
        pairs = []
        for it in items:
            for dev, ts in it.device_seen.items():
                if ts > seen.get(dev, -1):
                    seen[dev] = ts
            if it.seen_pairs is not None:
                pairs.append(it.seen_pairs)
        # the scanner's (device, ts) arrays merged once per group, not per message
        seen = newest_per_device(pairs, seen)
        with self._lock:
            self._merge(self.devices, seen)
            for it in items:
                if it.key is not None:
                    self.gateways[it.key.gateway_id] = now_ms

    @staticmethod
    def _merge(into: dict[int, int], new: dict[int, int]) -> None:
        for k, ts in new.items():
            if ts > into.get(k, -1):
                into[k] = ts

    def take(self, *, force: bool = False) -> tuple[dict[int, int], dict[int, int]] | None:
        """What is due for writing, emptied here; None when nothing is (or not yet)."""
        with self._lock:
            if not force and time.monotonic() - self._last_flush < self.every_s:
                return None
            self._last_flush = time.monotonic()
            if not self.devices and not self.gateways:
                return None
            taken = self.devices, self.gateways
            self.devices, self.gateways = {}, {}
            return taken

    def put_back(self, devices: dict[int, int], gateways: dict[int, int]) -> None:
        """Return times that could not be written (the next flush writes them)."""
        with self._lock:
            self._merge(self.devices, devices)
            self._merge(self.gateways, gateways)

    def flush(
        self, conn: Conn, registry: Registry, now_ms: int, *, force: bool = False
    ) -> tuple[int, int]:
        """Write what is due; return how many devices and gateways came online. On a database
        error the times are kept for the next flush."""
        taken = self.take(force=force)
        if taken is None:
            return 0, 0
        devs, gws = taken
        try:
            return flush_seen(
                conn,
                devs,
                gws,
                registry,
                factor=self.factor,
                default_period_s=self.default_period_s,
                now_ms=now_ms,
            )
        except psycopg.Error as exc:
            log.debug("last-seen flush failed, keeping it for later: %s", exc)
            self.put_back(devs, gws)
            return 0, 0


class Writers:
    """The writer threads of one worker (each runs :meth:`run` with its number)."""

    def __init__(  # noqa: PLR0917 - the stage's peers, all passed in by the worker
        self,
        database_url: str,
        config: IngestConfig,
        metrics: Metrics,
        registry: RegistryCache,
        decoder: Decoder,
        decoded: SimpleQueue[tuple[Incoming, Checked]],
        send_acks: AckSink,
        *,
        stop: threading.Event,
        clock: Callable[[], float],
        in_memory: Callable[[], int],
        commit: CommitStep | None = None,
    ) -> None:
        self.database_url = database_url
        self.config = config
        self.metrics = metrics
        self.registry = registry
        self.decoder = decoder
        self.decoded = decoded
        self.send_acks = send_acks
        self.clock = clock
        self._stop = stop
        self._in_memory = in_memory
        self._commit_step: CommitStep = commit or self.commit
        """What the writers call to commit a group (the worker routes it through itself)."""
        self.db_ok = threading.Event()
        """Set once a writer is connected to the database."""
        self.seen = LastSeen(
            every_s=config.state_flush_s,
            factor=config.offline_factor,
            default_period_s=config.default_poll_period_s,
        )
        self.configs = GatewayConfigCheck()
        self._collect_lock = threading.Lock()
        self._order = TurnOrder()
        self._tls = threading.local()
        self._held: dict[int, int] = {}
        """Messages each writer holds (taken off the queue, not yet acknowledged)."""
        self._conns: dict[int, Conn] = {}

    def held(self) -> int:
        """Messages the writers hold (taken off the queue, not yet acknowledged)."""
        return sum(self._held.values())

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ------------------------------------------------------------------------ the loop

    def run(self, writer: int = 1) -> None:
        """One writer thread: until ``stop``, collect a group, commit it, acknowledge it."""
        try:
            self._run(writer)
        finally:
            self._held[writer] = 0
            conn = self._conns.pop(writer, None)
            if conn is not None:
                conn.close()

    def _run(self, writer: int) -> None:
        conn: Conn | None = None
        while True:
            if conn is None or conn.closed:
                conn = self._open(writer)
                if conn is None:
                    return
            if self._stop.is_set():
                # what is still queued is not acked: the broker delivers it again
                self._flush_seen(conn, force=True)
                return
            self.registry.refresh(conn, self.config.registry_refresh_s)
            group, items, ticket = self.collect(writer)
            # the time the group is written at (not the time before waiting for it: a re-check
            # judges timestamps by it, and a compressed demo clock moves hours meanwhile)
            now_ms = self._now_ms()
            self.metrics.queue_depth.set(self._in_memory())
            if group:
                conn = self._take_turn(writer, conn, group, items, ticket, now_ms)
                if conn is None:
                    return  # told to stop before the group was in
            self._flush_seen(conn)

    def _open(self, writer: int) -> Conn | None:
        """Connect and load the registry, retrying with backoff; None if told to stop first."""
        backoff = Backoff(BackoffPolicy(base=0.2, cap=10.0))
        down_since: float | None = None
        while True:
            conn: Conn | None = None
            try:
                conn = self._conns[writer] = self._connect_db()
                self.registry.load(conn)
            except psycopg.Error as exc:
                if conn is not None:
                    conn.close()
                self._db_down(exc, down_since)
                down_since = down_since or time.monotonic()
                if self._stop.wait(backoff.next_delay()):
                    return None
                continue
            self._db_up(down_since)
            return conn

    def _connect_db(self) -> Conn:
        conn = psycopg.connect(
            self.database_url, autocommit=True, connect_timeout=10, application_name=APP_NAME
        )
        prepare(conn)
        return conn

    def _take_turn(  # noqa: PLR0917 - one group and where it stands, passed along
        self,
        writer: int,
        conn: Conn,
        group: list[Incoming],
        items: list[Checked],
        ticket: int,
        now_ms: int,
    ) -> Conn | None:
        """Commit the group of ``ticket`` and have its acks sent in ticket order; whatever
        happens the ticket is finished, or the groups after it would never be acknowledged."""
        pending: _Acks = []
        self._tls.pending = pending
        try:
            if any(it.unknown_ids for it in items):
                # an id the registry did not know: perhaps just registered. Reload (at most
                # every 2 s) and check again what was checked with an older snapshot.
                self.registry.refresh(conn, UNKNOWN_ID_RELOAD_S)
                items = self.decoder.recheck(group, items, now_ms)
            return self._write(writer, conn, group, items, ticket, now_ms)
        finally:
            self._tls.pending = None
            self._order.finish(
                ticket, functools.partial(self._send_all, list(pending)) if pending else None
            )
            self._held[writer] = 0

    # --------------------------------------------------------------------- collecting

    def collect(self, writer: int) -> tuple[list[Incoming], list[Checked], int]:
        """The next group off the queue and its ticket (one writer at a time, so groups are
        runs of the queue and tickets follow it); an empty group and -1 if none came."""
        with self._collect_lock:
            group, items = self._collect_group()
            self._held[writer] = len(group)
            return group, items, (self._order.take() if group else -1)

    def _collect_group(self) -> tuple[list[Incoming], list[Checked]]:
        try:
            m, it = self.decoded.get(timeout=0.2)
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
                    m, it = self.decoded.get_nowait()
                else:
                    # nothing new for `linger`: the burst is over, commit what is in hand
                    m, it = self.decoded.get(timeout=min(remaining, linger))
            except queue.Empty:
                break
            group.append(m)
            items.append(it)
            rows += len(it.rows)
            if remaining <= 0:
                break
        return group, items

    # ----------------------------------------------------------------------- committing

    def _write(  # noqa: PLR0917 - one group and where it stands, passed along
        self,
        writer: int,
        conn: Conn | None,
        group: list[Incoming],
        items: list[Checked],
        ticket: int,
        now_ms: int,
    ) -> Conn | None:
        """Commit one group, retrying until it is in; None when told to stop first."""
        # gateway state changes are applied in arrival order: wait for the earlier groups
        if any(it.state is not None for it in items) and not self._order.wait_turn(
            ticket, self._stop
        ):
            return None
        backoff = Backoff(BackoffPolicy(base=0.2, cap=10.0))
        down_since: float | None = None
        while True:
            try:
                if conn is None or conn.closed:
                    conn = self._conns[writer] = self._connect_db()
                self._commit_step(conn, group, items, now_ms)
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

    def commit(
        self, conn: Conn, group: Sequence[Incoming], items: Sequence[Checked], now_ms: int
    ) -> None:
        """Commit one group in one transaction, count it, acknowledge it (at its turn), check
        the gateways' announced configurations and note the last-seen times."""
        t0 = time.perf_counter()
        res = write_group(conn, items, now_ms)
        self._count(res, time.perf_counter() - t0)
        self._ack(group, res.new_keys | res.duplicate_keys)
        self.configs.check(conn, items, now_ms)
        self._observe_latency(items, res.new_keys, self._now_ms())
        self.seen.note(items, now_ms)

    def _count(self, res: GroupResult, seconds: float) -> None:
        m = self.metrics
        m.commits.inc()
        m.commit_seconds.observe(seconds)
        m.readings.inc(res.rows_inserted)
        m.duplicate_readings.inc(res.rows_offered - res.rows_inserted)
        m.duplicate_batches.inc(res.duplicate_messages)
        for reason, n in res.dead_by_reason.items():
            m.dead_letters.labels(reason).inc(n)

    def _observe_latency(
        self, items: Sequence[Checked], new_keys: set[BatchKey], commit_ms: int
    ) -> None:
        """Send-to-commit latency of each new batch, and the lag of the newest one."""
        newest: int | None = None
        for it in items:
            if it.sent_ms is not None and it.key in new_keys:
                self.metrics.latency.observe(max(0.0, (commit_ms - it.sent_ms) / 1000))
                newest = it.sent_ms if newest is None else max(newest, it.sent_ms)
        if newest is not None:
            self.metrics.lag.set(max(0.0, (commit_ms - newest) / 1000))

    def _commit_one_by_one(
        self, conn: Conn, group: Sequence[Incoming], items: Sequence[Checked], now_ms: int
    ) -> None:
        for m, it in zip(group, items, strict=True):
            try:
                self._commit_step(conn, [m], [it], now_ms)
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                dead = DeadLetter(
                    m.topic,
                    m.payload[:1_048_576],
                    DeadLetterReason.DB_REJECTED,
                    str(exc).strip()[:2000],
                    it.key.gateway if it.key else None,
                )
                with conn.transaction():
                    write_dead_letters(conn, [dead])
                self.metrics.dead_letters.labels(DeadLetterReason.DB_REJECTED).inc()
                self._ack([m], set())

    # ------------------------------------------------------------------ acks and state

    def _ack(self, group: Sequence[Incoming], keys: set[BatchKey]) -> None:
        """Acknowledge committed messages: at once outside a writer's turn, else when the
        group's turn comes (see TurnOrder)."""
        pending: _Acks | None = getattr(self._tls, "pending", None)
        if pending is None:
            self.send_acks(group, keys)
        else:
            pending.append((group, keys))

    def _send_all(self, acks: _Acks) -> None:
        for group, keys in acks:
            self.send_acks(group, keys)

    def _flush_seen(self, conn: Conn, *, force: bool = False) -> None:
        n_dev, n_gw = self.seen.flush(conn, self.registry.current, self._now_ms(), force=force)
        if n_dev:
            self.metrics.state_changes.labels("device", "online").inc(n_dev)
            log.info("%d device(s) online (data received)", n_dev)
        if n_gw:
            self.metrics.state_changes.labels("gateway", "online").inc(n_gw)
            log.info("%d gateway(s) online (data received)", n_gw)

    def _db_down(self, exc: Exception, since: float | None) -> None:
        self.metrics.db_up.set(0)
        if since is None:
            log.warning(
                "database unavailable; holding %d message(s) unacknowledged, retrying: %s",
                self._in_memory(),
                str(exc).strip(),
            )

    def _db_up(self, since: float | None) -> None:
        self.metrics.db_up.set(1)
        self.db_ok.set()
        if since is not None:
            log.info("database available again after %.1f s", time.monotonic() - since)
