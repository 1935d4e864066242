"""Connection pools that recover at once when the database ends their connections.

psycopg_pool alone recovers slowly from a restart or a ``pg_terminate_backend``:

* a checkout that meets a dead connection tries the next one after a pause that doubles each
  time (0, 1, 2, 4, 8 s...), so with ten dead connections in the pool a request waited up to
  the pool timeout (30 s) and ended in a 500;
* a failed reconnect is retried after 1, 2, 4, 8, 16 s..., so after an outage of 20 s the first
  connection came 10 s after the database was back.

The pools here keep psycopg_pool's machinery and change those two behaviours, through its
public hooks only (``getconn``/``putconn``, ``connection_class``):

* :meth:`ResilientAsyncPool.getconn` checks the connection it is about to give out (with
  :class:`suvnet.db.IdleCheck`: a round trip only when the connection was idle, or its socket
  says the server has ended it). A dead one is handed back, which closes it and asks the pool
  for a replacement, and the next one is tried *at once*. A request never sees a connection
  found dead, and waits at most for one new connection (a few milliseconds).
* the pool's connection class retries a failed connect by itself, with capped exponential
  backoff and jitter (0.1 s doubling to 1 s), for up to ``reconnect_window_s``; so the pool is
  whole within a second of the database's return. Errors a retry cannot fix (a wrong password,
  a missing database) are not retried here. The first failure and the recovery are logged
  once, not every retry.

Both pools name their sessions (``application_name``, unless the URL sets one), so
``pg_stat_activity`` shows whose connections they are, and ask the operating system for TCP
keepalives, so a connection whose network path is gone is found within about a minute even
when it is idle.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from suvnet.backoff import Backoff, BackoffPolicy
from suvnet.db import IdleCheck

log = logging.getLogger(__name__)

RECONNECT_POLICY = BackoffPolicy(base=0.1, factor=2.0, cap=1.0, jitter_floor=0.5)
"""Delays between connect attempts while the database is away: 0.05-0.1 s, then doubling,
never more than 1 s."""

NOT_TRANSIENT = ("28", "3D")
"""SQLSTATE classes a retry will not fix: invalid authorization, unknown database."""

CONNECT_KWARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def pool_kwargs(url: str, name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Connection parameters of a pool: keepalives, a connect timeout and the session name,
    each unless the URL sets it already."""
    given = conninfo_to_dict(url)
    out = {k: v for k, v in CONNECT_KWARGS.items() if k not in given}
    if "application_name" not in given:
        out["application_name"] = name
    out.update(extra or {})
    return out


def retryable(exc: psycopg.OperationalError) -> bool:
    """Whether a failed connect may succeed when tried again (the server is away, starting,
    shutting down or full), as opposed to a refusal a retry will not change."""
    state = exc.sqlstate or ""
    return not state.startswith(NOT_TRANSIENT)


class _Outage:
    """Logs the state change (database lost, database back) once per outage, not per retry."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.since: float | None = None
        self._lock = threading.Lock()

    def failed(self, exc: Exception) -> None:
        with self._lock:
            if self.since is None:
                self.since = time.monotonic()
                log.warning(
                    "pool %s cannot reach the database, retrying (every 1 s at most): %s",
                    self.name,
                    str(exc).strip(),
                )

    def connected(self) -> None:
        with self._lock:
            if self.since is not None:
                log.warning(
                    "pool %s reaches the database again after %.1f s",
                    self.name,
                    time.monotonic() - self.since,
                )
                self.since = None


def _async_connection_class(
    outage: _Outage, stop: threading.Event, window_s: float
) -> type[psycopg.AsyncConnection[Any]]:
    class RetryingAsyncConnection(psycopg.AsyncConnection[Any]):
        """Connects with capped backoff while the database is away (see the module doc)."""

        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            backoff = Backoff(RECONNECT_POLICY)
            give_up = time.monotonic() + window_s
            while True:
                try:
                    conn = await super().connect(conninfo, **kwargs)
                except psycopg.OperationalError as exc:
                    outage.failed(exc)
                    delay = backoff.next_delay()
                    if stop.is_set() or not retryable(exc) or time.monotonic() + delay > give_up:
                        raise
                    await asyncio.sleep(delay)
                    continue
                outage.connected()
                return conn

    return RetryingAsyncConnection


def _connection_class(
    outage: _Outage, stop: threading.Event, window_s: float
) -> type[psycopg.Connection[Any]]:
    class RetryingConnection(psycopg.Connection[Any]):
        """Connects with capped backoff while the database is away (see the module doc)."""

        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            backoff = Backoff(RECONNECT_POLICY)
            give_up = time.monotonic() + window_s
            while True:
                try:
                    conn = super().connect(conninfo, **kwargs)
                except psycopg.OperationalError as exc:
                    outage.failed(exc)
                    delay = backoff.next_delay()
                    if not retryable(exc) or time.monotonic() + delay > give_up:
                        raise
                    if stop.wait(delay):  # the pool is closing
                        raise
                    continue
                outage.connected()
                return conn

    return RetryingConnection


class ResilientAsyncPool(AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """An :class:`AsyncConnectionPool` that gives out only connections found alive, and tries
    the next one at once when it finds a dead one (see the module doc)."""

    def __init__(
        self,
        conninfo: str,
        *,
        idle_check: IdleCheck,
        reconnect_window_s: float = 60.0,
        **kwargs: Any,
    ) -> None:
        self.idle_check = idle_check
        self._stopping = threading.Event()
        name = str(kwargs.get("name") or "pool")
        super().__init__(
            conninfo,
            connection_class=_async_connection_class(
                _Outage(name), self._stopping, reconnect_window_s
            ),
            configure=self._fresh,
            **kwargs,
        )

    async def _fresh(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.idle_check.mark(conn)  # just connected: no need to ask the server again

    async def getconn(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg_pool's signature
    ) -> psycopg.AsyncConnection[Any]:
        total = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + total
        dead = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PoolTimeout(f"couldn't get a connection after {total:.2f} sec")
            try:
                conn = await super().getconn(left)
            except PoolTimeout:
                raise PoolTimeout(f"couldn't get a connection after {total:.2f} sec") from None
            try:
                await self.idle_check(conn)
            except psycopg.Error as exc:
                # dead (ended by the server, or its network path is gone): handing it back
                # closes it and asks for a replacement; the next one is tried at once
                dead += 1
                self.idle_check.suspect()
                log.info("pool %s: a connection was dead, replacing it: %s", self.name, exc)
                await self.putconn(conn)
                if dead > self.max_size:  # every one dead, and the new ones too: pause
                    await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            except BaseException:
                await self.putconn(conn)
                raise
            return conn

    async def putconn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if not conn.closed:
            self.idle_check.mark(conn)
        await super().putconn(conn)

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - as getconn
        self._stopping.set()
        await super().close(timeout)


class ResilientPool(ConnectionPool[psycopg.Connection[Any]]):
    """The synchronous twin of :class:`ResilientAsyncPool` (used from worker threads)."""

    def __init__(
        self,
        conninfo: str,
        *,
        idle_check: IdleCheck,
        reconnect_window_s: float = 60.0,
        **kwargs: Any,
    ) -> None:
        self.idle_check = idle_check
        self._stopping = threading.Event()
        name = str(kwargs.get("name") or "pool")
        super().__init__(
            conninfo,
            connection_class=_connection_class(_Outage(name), self._stopping, reconnect_window_s),
            configure=self._fresh,
            **kwargs,
        )

    def _fresh(self, conn: psycopg.Connection[Any]) -> None:
        self.idle_check.mark(conn)

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        total = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + total
        dead = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PoolTimeout(f"couldn't get a connection after {total:.2f} sec")
            try:
                conn = super().getconn(left)
            except PoolTimeout:
                raise PoolTimeout(f"couldn't get a connection after {total:.2f} sec") from None
            try:
                self.idle_check.check_sync(conn)
            except psycopg.Error as exc:
                dead += 1
                self.idle_check.suspect()
                log.info("pool %s: a connection was dead, replacing it: %s", self.name, exc)
                self.putconn(conn)
                if dead > self.max_size:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            except BaseException:
                self.putconn(conn)
                raise
            return conn

    def putconn(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.closed:
            self.idle_check.mark(conn)
        super().putconn(conn)

    def close(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        super().close(timeout)
