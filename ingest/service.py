"""The ingest worker: MQTT in, PostgreSQL out. This module only puts the stages together.

::

    broker --> MqttLink --received--> Decoder --decoded--> Writers --COPY--> PostgreSQL
                  ^                                           |
                  +------- PUBACKs and end-to-end acks -------+  (after the commit, in order)
    Maintenance (rollups, offline check, partitions, pruning) on its own connection

Each stage is a module with one job, usable and testable alone:

* :mod:`ingest.link` -- :class:`~ingest.link.MqttLink`, the ``ingest-mqtt`` thread: connect,
  subscribe, receive (with the lean path of ``_IngestClient`` for plain QoS 1 packets), send
  the acks;
* :mod:`ingest.decode` -- :class:`~ingest.decode.Decoder`, the ``ingest-decoder`` thread:
  check each message (pure code of :mod:`ingest.validate`) against the registry snapshot
  (:class:`~ingest.decode.RegistryCache`), ahead of the writers;
* :mod:`ingest.writer` -- :class:`~ingest.writer.Writers`, the ``ingest-writer-1`` .. ``-N``
  threads: commit groups, acknowledge them in arrival order, note last-seen times, check the
  gateways' announced configurations (:mod:`ingest.gateway_config`);
* :mod:`ingest.maintenance` -- :class:`~ingest.maintenance.Maintenance`, the
  ``ingest-maintenance`` thread.

:class:`IngestWorker` makes the two queues between them (bounded by Receive Maximum, see
:mod:`ingest.queues`) and one stop event, runs each stage in a named thread that is restarted
(logged and counted) if it crashes, serves ``/metrics``, and stops in order: the writers finish
the group in hand (commit and acknowledge), then the link disconnects.

Overflow policy of the queues: their size equals the MQTT Receive Maximum announced to the
broker, so the broker never has more unacknowledged messages in flight than fit. Should a
broker send more anyway, the network thread blocks on the full queue (TCP backpressure):
nothing is dropped.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any

import psycopg
from prometheus_client import start_http_server

from ingest.config import APP_NAME, IngestConfig
from ingest.decode import Decoder, RegistryCache
from ingest.errors import IngestError
from ingest.link import BrokerAddress, MqttLink, _IngestClient, parse_mqtt_url
from ingest.maintenance import Maintenance
from ingest.metrics import Metrics
from ingest.queues import Incoming
from ingest.validate import Checked, Window
from ingest.writer import Writers
from suvnet.backoff import Backoff, BackoffPolicy
from suvnet.protocol import Topics

__all__ = [
    "APP_NAME",
    "BrokerAddress",
    "Incoming",
    "IngestWorker",
    "_IngestClient",
    "parse_mqtt_url",
]

log = logging.getLogger("ingest")


class IngestWorker:
    """One ingest worker. ``start()`` runs it in background threads; ``stop()`` ends it.

    Its stages are ``link`` (MqttLink), ``decoder`` (Decoder), ``writers`` (Writers) and
    ``maintenance`` (Maintenance); ``registry`` is the snapshot the decoder and writers share.
    """

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
        self.metrics = metrics or Metrics()
        self.window = Window(config.max_age_s, config.max_future_s)
        self._clock = clock
        self._stop = threading.Event()
        self._writers_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._metrics_server: Any = None
        self._received: SimpleQueue[Incoming] = SimpleQueue()
        self._decoded: SimpleQueue[tuple[Incoming, Checked]] = SimpleQueue()
        self.registry = RegistryCache(config.default_poll_period_s)
        self.link = MqttLink(
            self.broker,
            config,
            self.topics,
            self.metrics,
            self._received,
            stop=self._stop,
            leave=self._writers_done,
        )
        self.decoder = Decoder(
            self.topics,
            self.window,
            self.registry,
            self.metrics,
            self._received,
            self._decoded,
            queue_size=config.queue_size,
            stop=self._stop,
            clock=clock,
        )
        self.writers = Writers(
            database_url,
            config,
            self.metrics,
            self.registry,
            self.decoder,
            self._decoded,
            self.link.send_acks,
            stop=self._stop,
            clock=clock,
            in_memory=self.in_memory,
            # looked up on the worker at each call: see _commit
            commit=lambda conn, group, items, now_ms: self._commit(conn, group, items, now_ms),  # noqa: PLW0108
        )
        self.maintenance = Maintenance(
            database_url, config, self.metrics, stop=self._stop, clock=clock
        )

    @property
    def clock(self) -> Callable[[], float]:
        """The worker's clock (seconds since the epoch); setting it sets every stage's."""
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.decoder.clock = self.writers.clock = self.maintenance.clock = clock

    # ------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.config.metrics_port:
            self._serve_metrics()
        tasks: list[tuple[str, Callable[[], None]]] = [("ingest-decoder", self.decoder.run)]
        tasks += [
            (f"ingest-writer-{n}", functools.partial(self.writers.run, n))
            for n in range(1, self.config.writers + 1)
        ]
        tasks += [("ingest-mqtt", self.link.run), ("ingest-maintenance", self.maintenance.run)]
        for name, fn in tasks:
            t = threading.Thread(target=self._supervise, args=(name, fn), name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def _serve_metrics(self) -> None:
        addr, port = self.config.metrics_addr, self.config.metrics_port
        try:
            self._metrics_server, _ = start_http_server(
                port, addr=addr, registry=self.metrics.registry
            )
        except OSError as exc:
            raise IngestError(
                f"cannot serve metrics on {addr}:{port} ({exc.strerror or exc}); choose another "
                "--metrics-port, or 0 to turn metrics off"
            ) from exc
        log.info("metrics on http://%s:%d/metrics", addr, port)

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """True once subscribed on the broker and connected to the database."""
        end = time.monotonic() + timeout
        return self.link.subscribed.wait(timeout) and self.writers.db_ok.wait(
            max(0.0, end - time.monotonic())
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Finish the group in hand (commit and ack), then disconnect."""
        self._stop.set()
        for t in self._threads:
            if t.name.startswith("ingest-writer"):
                t.join(timeout)
        # only now may the network thread leave: every commit so far has been acked
        self._writers_done.set()
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
            except Exception:
                self.metrics.task_restarts.labels(name).inc()
                log.exception("task %s crashed; restarting it", name)
                if name.startswith(("ingest-decoder", "ingest-writer")):
                    # messages it held are neither committed nor acked: reconnect, so that the
                    # broker delivers them again (the rest is deduplicated)
                    self.link.disconnect()
                if self._stop.wait(backoff.next_delay()):
                    return

    def in_memory(self) -> int:
        """Messages received and not yet acknowledged (queued, decoded or being written)."""
        return self._received.qsize() + self._decoded.qsize() + self.writers.held()

    def run_task(self, conn: psycopg.Connection[Any], task: str) -> None:
        """Run one maintenance task now (``rollups``, ``freshness``, ``partitions``, ``prune``)."""
        self.maintenance.run_task(conn, task)

    # ------------------------------------------------ what the tests reach into, kept stable

    def _commit(
        self,
        conn: psycopg.Connection[Any],
        group: Sequence[Incoming],
        items: Sequence[Checked],
        now_ms: int,
    ) -> None:
        """Commit one group (:meth:`Writers.commit`). The writers call it through the worker,
        so that a wrapper set on the worker takes effect (the tests inject a crash or a slow
        commit so)."""
        self.writers.commit(conn, group, items, now_ms)

    @property
    def _gen(self) -> int:
        """The MQTT connection generation (one more at each connect)."""
        return self.link.gen

    @property
    def _client(self) -> _IngestClient:
        return self.link.client

    def _make_client(self) -> _IngestClient:
        return self.link.make_client()
