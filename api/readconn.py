"""Read-only pages on a streaming replica (``SUVNET_DATABASE_READ_URL``).

A route that only reads, and need not see a write made a moment ago, takes
:data:`ReadConn` instead of :data:`api.deps.Conn`: reports, the cabinet's history, the
balance roll-ups. Its connection comes from the replica's pool, with the caller's scope
set by :func:`api.deps.scope_connection` exactly as on the primary (role suvnet_app and
the caller's branches: the row-level security policies are replicated with the data), so
a branch user sees only their branch there too.

The connection comes from the primary instead (the same connection :func:`api.deps.get_conn`
gives) when:

* no replica is configured;
* the replica is further behind than ``SUVNET_READ_MAX_LAG_S``, unreachable, or not a replica
  at all (checked every ``SUVNET_READ_CHECK_INTERVAL_S`` by :class:`ReadReplica`; each change
  of state is logged once, as a warning when reads leave the replica);
* a checkout from the replica fails (the replica is marked down at once);
* the request changes something (not GET/HEAD);
* the caller must see their own recent writes: the :data:`FRESH_COOKIE` is set
  (:func:`read_fresh`; the cabinet sets it when the customer leaves to pay, so the cabinet
  shows the payment as soon as the provider's callback has posted it).

The login check of every request (:func:`api.users.check_principal`) always runs on the
primary: a revoked token is refused at once, however far behind the replica is.
Pages that must see their own writes (the cashier desk after a payment) keep
:data:`api.deps.Conn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from fastapi.responses import Response
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.deps import (
    PRINCIPAL_KEY,
    SAFE_METHODS,
    AppState,
    _route_needs,
    current_principal,
    get_conn,
    get_state,
    scope_connection,
)
from api.security import Principal
from suvnet.db import IdleCheck
from suvnet.dbpool import ResilientAsyncPool, pool_kwargs
from suvnet.replica import PRIMARY_SQL, REPLICA_SQL, LagEstimator, ReplicaStatus
from suvnet.settings import Settings

log = logging.getLogger(__name__)

FRESH_COOKIE = "suvnet_fresh"
"""While a browser carries this cookie its read-only pages read from the primary."""
READ_POOL_NAME = "suvnet-api-read"
"""``application_name`` of the replica pool's sessions (``pg_stat_activity`` on the replica)."""
CHECK_NAME = "suvnet-api-lagcheck"
CHECKOUT_TIMEOUT_S = 2.0
"""A read waits at most this long for a replica connection, then reads from the primary."""


class ReadReplica:
    """The replica of one API worker: its pool, its state, and the check that keeps the
    state current (every ``read_check_interval_s``, in the background)."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.max_lag_s = settings.read_max_lag_s
        self.interval_s = settings.read_check_interval_s
        self.pool_min = settings.db_pool_min
        self.pool_max = settings.db_pool_max
        self.estimator = LagEstimator(self.max_lag_s)
        self.status = ReplicaStatus("down", detail="not checked yet")
        self.pool: AsyncConnectionPool | None = None
        self._primary: AsyncConnectionPool | None = None
        self._check_conn: AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self, primary: AsyncConnectionPool) -> None:
        """Open the pool (without waiting: the replica may be away) and check once."""
        self._primary = primary
        self.pool = ResilientAsyncPool(
            self.url,
            idle_check=IdleCheck(30.0),
            reconnect_window_s=5.0,
            kwargs=pool_kwargs(self.url, READ_POOL_NAME, {"autocommit": True}),
            min_size=self.pool_min,
            max_size=self.pool_max,
            name=READ_POOL_NAME,
            open=False,
            timeout=CHECKOUT_TIMEOUT_S,
            reconnect_timeout=300.0,
        )
        await self.pool.open(wait=False)
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="replica-lag-check")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop_check_conn()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # the check must go on whatever happens
                log.exception("replica check failed")

    async def check(self) -> ReplicaStatus:
        """Ask the primary how far its WAL goes, then the replica how far it has replayed;
        set and return the new :attr:`status`."""
        assert self._primary is not None, "open() first"
        try:
            async with (
                self._primary.connection(timeout=5) as conn,
                conn.cursor(row_factory=tuple_row) as cur,
            ):
                # (a pooled connection: a request may have left dict rows on it)
                row = await (await cur.execute(PRIMARY_SQL)).fetchone()
        except (psycopg.Error, PoolTimeout) as exc:
            # the primary is away: nothing to compare with; the replica keeps its state
            log.debug("replica check: the primary does not answer: %s", exc)
            return self.status
        assert row is not None
        try:
            ans = await asyncio.wait_for(self._ask_replica(row[0]), self.interval_s + 5.0)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            await self._drop_check_conn()
            return self._set(self.estimator.down(exc))
        return self._set(self.estimator.observe(row[0], *ans))

    async def _ask_replica(self, primary_lsn: str) -> tuple[Any, ...]:
        if self._check_conn is None or self._check_conn.closed:
            self._check_conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, **pool_kwargs(self.url, CHECK_NAME)
            )
        cur = await self._check_conn.execute(REPLICA_SQL, (primary_lsn,))
        ans = await cur.fetchone()
        assert ans is not None
        return tuple(ans)

    async def _drop_check_conn(self) -> None:
        if self._check_conn is not None:
            with contextlib.suppress(Exception):
                await self._check_conn.close()
            self._check_conn = None

    def failed(self, exc: BaseException) -> None:
        """A read could not use the replica: down until the next check says otherwise."""
        self._set(self.estimator.down(exc))

    def _set(self, new: ReplicaStatus) -> ReplicaStatus:
        old, self.status = self.status, new
        if old.usable and not new.usable:
            log.warning("read replica skipped: %s", new.describe(self.max_lag_s))
        elif new.usable and not old.usable:
            log.warning("read replica serves reads again: %s", new.describe(self.max_lag_s))
        elif not new.usable and old.state != new.state:
            log.warning("read replica still skipped: %s", new.describe(self.max_lag_s))
        return new


def replica_of(st: AppState) -> ReadReplica | None:
    rep = st.replica
    return rep if isinstance(rep, ReadReplica) else None


async def _caller(request: Request) -> Principal | None:
    """The request's caller for the replica connection's scope. Routes name their login
    before the connection, so it is known; when it is not, it is checked now (on the
    primary); a route without a login sees no branch."""
    state = request.scope.setdefault("state", {})
    if PRINCIPAL_KEY in state:
        principal: Principal | None = state[PRINCIPAL_KEY]
        return principal
    if not _route_needs(request)[1]:
        return None
    return await current_principal(request)


async def get_read_conn(request: Request) -> AsyncIterator[AsyncConnection[DictRow]]:
    """A connection for a read-only page: from the replica while it may serve reads,
    otherwise from the primary (see the module doc). Autocommit, the caller's scope."""
    st = get_state(request)
    rep = replica_of(st)
    conn: AsyncConnection[Any] | None = None
    if (
        rep is not None
        and rep.pool is not None
        and rep.status.usable
        and request.method in SAFE_METHODS
        and FRESH_COOKIE not in request.cookies
    ):
        principal = await _caller(request)
        try:
            conn = await rep.pool.getconn(CHECKOUT_TIMEOUT_S)
        except (PoolTimeout, psycopg.Error) as exc:
            rep.failed(exc)
        if conn is not None:
            try:
                conn.row_factory = dict_row
                await scope_connection(conn, principal)
            except psycopg.OperationalError as exc:
                await rep.pool.putconn(conn)
                conn = None
                rep.failed(exc)
    if conn is None:
        async with contextlib.asynccontextmanager(get_conn)(request) as primary:
            yield primary
        return
    try:
        yield conn
    finally:
        assert rep is not None
        assert rep.pool is not None
        if conn.broken or conn.closed:  # the replica went away during the request
            rep.failed(psycopg.OperationalError("a replica connection broke during a read"))
        await rep.pool.putconn(conn)


ReadConn = Annotated[AsyncConnection[DictRow], Depends(get_read_conn)]


def read_fresh(response: Response, request: Request, seconds: int) -> None:
    """For ``seconds``, this browser's read-only pages read from the primary (they must
    show what it has just done, or what a payment provider is about to post)."""
    st = get_state(request)
    response.set_cookie(
        FRESH_COOKIE,
        "1",
        max_age=seconds,
        path="/",
        httponly=True,
        samesite="lax",
        secure=st.secure_cookies,
    )


def health(st: AppState) -> dict[str, Any] | None:
    """The replica's part of ``GET /health`` (None: no replica configured)."""
    rep = replica_of(st)
    if rep is None:
        return None
    return {**rep.status.as_dict(), "max_lag_s": rep.max_lag_s}
