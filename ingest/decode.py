"""The decode stage of an ingest worker, and the registry snapshot it checks against.

:class:`Decoder` (the ``ingest-decoder`` thread) takes each message off the *received* queue,
checks it with the pure code of :mod:`ingest.validate` (the compiled scanner, the Python fast
path or the full decoder) against the current :class:`RegistryCache` snapshot and the clock,
prepares the rows in binary COPY format, and puts the message with its outcome
(:class:`~ingest.validate.Checked`) on the *decoded* queue for the writers. It runs ahead of
the writers, so decoding overlaps the database round trips.

The writers load the registry (they hold the database connections) into the
:class:`RegistryCache`; the decoder waits for the first load before it checks anything.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any

import psycopg

from ingest.metrics import Metrics
from ingest.queues import Incoming, put_bounded
from ingest.store import load_registry, pack_rows
from ingest.validate import Checked, Registry, Window, check_state, check_telemetry, warm_up_scanner
from suvnet.protocol import Topics

log = logging.getLogger("ingest")

UNKNOWN_ID_RELOAD_S = 2.0
"""An unknown id reloads the registry when the snapshot is older than this (a new registry
entry is picked up within about 2 s of its first message)."""


class RegistryCache:
    """The registry snapshot shared by the decoder (reads it) and the writers (load it)."""

    def __init__(self, default_poll_period_s: float) -> None:
        self.default_poll_period_s = default_poll_period_s
        self.current = Registry()
        self.ready = threading.Event()
        """Set once a snapshot has been loaded."""

    def age(self) -> float:
        """Seconds since the current snapshot was loaded (``time.monotonic``)."""
        return time.monotonic() - self.current.loaded_at

    def load(self, conn: psycopg.Connection[Any]) -> None:
        """Read the registry now; a database error propagates."""
        self.current = load_registry(conn, self.default_poll_period_s)
        self.ready.set()

    def refresh(self, conn: psycopg.Connection[Any], older_than_s: float = 0.0) -> None:
        """Re-read the registry if the snapshot is older than ``older_than_s``; on a database
        error keep the old snapshot (the commit that follows meets the same error and retries)."""
        if self.age() <= older_than_s:
            return
        try:
            self.load(conn)
        except psycopg.Error as exc:
            log.debug("registry reload failed, keeping the previous snapshot: %s", exc)


class Decoder:
    """Checks messages ahead of the writers (one thread: :meth:`run`)."""

    def __init__(  # noqa: PLR0917 - the stage's peers, all passed in by the worker
        self,
        topics: Topics,
        window: Window,
        registry: RegistryCache,
        metrics: Metrics,
        received: SimpleQueue[Incoming],
        decoded: SimpleQueue[tuple[Incoming, Checked]],
        *,
        queue_size: int,
        stop: threading.Event,
        clock: Callable[[], float],
    ) -> None:
        self.topics = topics
        self.window = window
        self.registry = registry
        self.metrics = metrics
        self.received = received
        self.decoded = decoded
        self.queue_size = queue_size
        self._stop = stop
        self.clock = clock

    def check(self, m: Incoming, now_ms: int) -> Checked:
        """Check one message against the current registry snapshot (pure but for the read of
        the snapshot)."""
        reg = self.registry.current
        if m.topic.endswith("/telemetry"):
            out = check_telemetry(m.topic, m.payload, self.topics, reg, now_ms, self.window)
        else:
            out = check_state(m.topic, m.payload, self.topics, reg)
        out.registry_at = reg.loaded_at
        return out

    def recheck(
        self, group: Sequence[Incoming], items: Sequence[Checked], now_ms: int
    ) -> list[Checked]:
        """Check again the messages that named an id the registry did not know, when a newer
        snapshot has been loaded since; the others are kept as they are. ``now_ms`` is the
        time of the write (timestamps are judged by it)."""
        at = self.registry.current.loaded_at
        return [
            self.check(m, now_ms) if it.unknown_ids and it.registry_at < at else it
            for m, it in zip(group, items, strict=True)
        ]

    def decode(self, m: Incoming) -> Checked:
        """Check one message at the time of the clock and prepare its COPY bytes."""
        it = self.check(m, int(self.clock() * 1000))
        if it.rows and it.packed is None:
            it.packed = pack_rows(it.rows)
        return it

    def run(self) -> None:
        """The decoder loop: until ``stop``, received -> check -> decoded."""
        warm_up_scanner()
        while not self.registry.ready.wait(0.5):
            if self._stop.is_set():
                return
        counters: dict[str, Any] = {}
        counts: dict[str, int] = {}
        while not self._stop.is_set():
            try:
                m = self.received.get(timeout=0.2)
            except queue.Empty:
                continue
            kind = "telemetry" if m.topic.endswith("/telemetry") else "state"
            counts[kind] = counts.get(kind, 0) + 1
            put_bounded(self.decoded, (m, self.decode(m)), self.queue_size, self._stop)
            if self.received.empty() or sum(counts.values()) >= 100:
                # the message counters, now and then rather than per message
                for k, n in counts.items():
                    self._counter(counters, k).inc(n)
                counts.clear()

    def _counter(self, counters: dict[str, Any], kind: str) -> Any:
        counter = counters.get(kind)
        if counter is None:
            counter = counters[kind] = self.metrics.messages.labels(kind)
        return counter
