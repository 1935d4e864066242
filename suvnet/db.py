"""PostgreSQL access with psycopg 3: URL resolution, connections and pools.

Connections are retried with capped exponential backoff; pools (sync and async) find dead
connections before a caller does and reconnect by themselves (:mod:`suvnet.dbpool`). When no
``SUVNET_DATABASE_URL`` is configured the embedded PostgreSQL is used.
"""

from __future__ import annotations

import logging
import select
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from suvnet.backoff import Backoff, BackoffPolicy
from suvnet.errors import DatabaseError
from suvnet.settings import Settings

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

log = logging.getLogger(__name__)

_resolved: dict[tuple[str | None, str], str] = {}


def database_url(settings: Settings) -> str:
    """The configured database URL, or the URL of the embedded PostgreSQL (started on demand)."""
    key = (settings.database_url, str(settings.home))
    if key in _resolved:
        return _resolved[key]
    if settings.database_url:
        url = settings.database_url
    else:
        from suvnet.embedded import embedded_postgres_url

        url = embedded_postgres_url(settings.home)
        log.info(
            "SUVNET_DATABASE_URL is not set: using the embedded PostgreSQL", extra={"url": url}
        )
    _resolved[key] = url
    return url


def database_source(settings: Settings) -> str:
    """Human description of where the database comes from."""
    if settings.database_url:
        return "configured (SUVNET_DATABASE_URL)"
    return f"embedded PostgreSQL in {settings.home / 'pgdata'}"


def connect(
    url: str,
    *,
    autocommit: bool = False,
    attempts: int = 5,
    policy: BackoffPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection, retrying ``attempts`` times with capped backoff."""
    import psycopg

    backoff = Backoff(policy or BackoffPolicy(base=0.2, cap=5.0))
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
        except psycopg.OperationalError as exc:
            last = exc
            if attempt < attempts:
                delay = backoff.next_delay()
                if attempt == 1:
                    log.warning("database not reachable, retrying: %s", str(exc).strip())
                sleep(delay)
    raise DatabaseError(f"cannot connect to the database: {str(last).strip()}") from last


def make_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    name: str = "suvnet",
    max_idle_s: float = 30.0,
    reconnect_window_s: float = 60.0,
    checkout_timeout_s: float = 30.0,
) -> ConnectionPool:
    """A sync pool that finds dead connections before a caller does and replaces them at once,
    and reconnects within a second of the database's return (see :mod:`suvnet.dbpool`).
    Its sessions are named ``name`` in ``pg_stat_activity``; a caller waits at most
    ``checkout_timeout_s`` seconds for a connection (then ``psycopg_pool.PoolTimeout``)."""
    from suvnet.dbpool import ResilientPool, pool_kwargs

    return ResilientPool(
        url,
        idle_check=IdleCheck(max_idle_s),
        reconnect_window_s=reconnect_window_s,
        kwargs=pool_kwargs(url, name),
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=True,
        timeout=checkout_timeout_s,
        reconnect_timeout=300.0,
    )


class IdleCheck:
    """The check on checkout, cheap for connections in steady use.

    A connection that was used (connected, handed out or given back) less than ``max_idle_s``
    ago and whose socket has nothing waiting is given out without a round trip to the server.
    A server that ends a session (``pg_terminate_backend``, a restart, an idle timeout) first
    sends an error message and closes the socket: that makes the socket readable, and such a
    connection gets the full check (an empty query), fails it and is replaced by the pool.
    Connections idle for longer than ``max_idle_s`` always get the full check (it also catches
    a silently lost network path), and so does every connection for a few seconds after a dead
    one was found (:meth:`suspect`). ``clock`` is replaceable for tests.
    """

    def __init__(self, max_idle_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.max_idle_s = max_idle_s
        self.clock = clock
        self._last: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._suspect_until = 0.0

    def suspect(self, seconds: float = 5.0) -> None:
        """A dead connection was just found: for ``seconds`` every checkout gets the full
        check. The server ends its sessions one by one, so a socket that is still quiet may
        belong to a session being ended right now; the round trip waits for its answer."""
        self._suspect_until = max(self._suspect_until, self.clock() + seconds)

    def mark(self, conn: Any) -> None:
        """``conn`` was just used successfully (connected, checked or given back)."""
        self._last[conn] = self.clock()

    def needs_round_trip(self, conn: Any) -> bool:
        """Whether ``conn`` must be asked; raises ``OperationalError`` when it is closed."""
        if conn.closed or conn.broken:
            import psycopg

            raise psycopg.OperationalError("the connection is closed")
        last = self._last.get(conn)
        now = self.clock()
        return (
            last is None
            or now - last > self.max_idle_s
            or now < self._suspect_until
            or _socket_readable(conn.pgconn.socket)
        )

    async def __call__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        from psycopg_pool import AsyncConnectionPool

        if self.needs_round_trip(conn):
            await AsyncConnectionPool.check_connection(conn)
        self.mark(conn)

    def check_sync(self, conn: psycopg.Connection[Any]) -> None:
        """The same check for a synchronous connection."""
        from psycopg_pool import ConnectionPool

        if self.needs_round_trip(conn):
            ConnectionPool.check_connection(conn)
        self.mark(conn)


def _socket_readable(fd: int) -> bool:
    """True when an idle connection's socket has data or an end-of-file waiting (no wait)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


async def make_async_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    name: str = "suvnet",
    max_idle_s: float = 30.0,
    reconnect_window_s: float = 60.0,
    checkout_timeout_s: float = 30.0,
) -> AsyncConnectionPool:
    """An async pool that finds dead connections before a request does and replaces them at
    once, and reconnects within a second of the database's return (see :mod:`suvnet.dbpool`).

    Connections are checked on checkout by :class:`IdleCheck`: a round trip only for those
    idle longer than ``max_idle_s`` or whose server has sent something (e.g. ended them).
    Its sessions are named ``name`` in ``pg_stat_activity``; a caller waits at most
    ``checkout_timeout_s`` seconds for a connection (then ``psycopg_pool.PoolTimeout``).
    """
    from suvnet.dbpool import ResilientAsyncPool, pool_kwargs

    pool = ResilientAsyncPool(
        url,
        idle_check=IdleCheck(max_idle_s),
        reconnect_window_s=reconnect_window_s,
        kwargs=pool_kwargs(url, name),
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        timeout=checkout_timeout_s,
        reconnect_timeout=300.0,
    )
    await pool.open()
    return pool
