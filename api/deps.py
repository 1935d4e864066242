"""FastAPI dependencies: the app state, the database, the caller (``require``) and
pagination. (The audit log writer is :mod:`api.audit`.)

Branches (docs/branches.md): every connection a request uses runs as the database role
suvnet_app with the caller's scope (:func:`scope_connection`), so the row-level security
policies of migration 0801 show a branch user only their branch's rows, whatever the query.
This module is the one place where the scope is set for the async connections;
:mod:`api.syncdb` does the same for the synchronous ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Query, Request
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from api import users
from api.errors import ForbiddenError, NotAuthenticatedError
from api.limits import BodyLimits
from api.security import (
    APP_ROLE,
    NO_BRANCHES,
    Principal,
    RateLimitPolicy,
    Role,
    csrf_ok,
    read_access_token,
    token_problem,
)
from suvnet.listing import Page
from suvnet.protocol import Topics
from suvnet.settings import Settings

SESSION_COOKIE = "suvnet_session"
REFRESH_COOKIE = "suvnet_refresh"
CSRF_COOKIE = "suvnet_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONN_KEY = "suvnet.conn"
"""Key in the request's scope state: the connection of :func:`get_conn`, once it has one."""
CHECKED_KEY = "suvnet.checked"
"""Key in the request's scope state: (token, principal) already checked against the users
table in this request (by the web session middleware)."""
PRINCIPAL_KEY = "suvnet.principal"
"""Key in the request's scope state: the caller, once :func:`current_principal` knows it."""
PENDING_KEY = "suvnet.pending"
"""Key in the request's scope state: the caller whose users-table check waits for the
request's connection (:func:`get_conn` does it in the statement that scopes it)."""
SCOPE_SQL = "SELECT set_config('role', %s, false), set_config('suvnet.branches', %s, false)"

request_principal: ContextVar[Principal | None] = ContextVar("suvnet_principal", default=None)
"""The caller of the request being handled, for :func:`api.syncdb.run_sync` (which runs in a
worker thread with a copy of this context). Set by :func:`current_principal`."""


OTHER_BRANCH = "this is another branch's: it may not be changed from this login"


def other_branch(exc: BaseException) -> ForbiddenError | None:
    """The refusal (403 ``other_branch``) of a change that the row-level security policies
    stopped (a row of another branch hit by an upsert, say), or None for any other error."""
    if isinstance(exc, psycopg.errors.InsufficientPrivilege) and "row-level security" in str(
        exc.diag.message_primary or exc
    ):
        return ForbiddenError(OTHER_BRANCH, code="other_branch")
    return None


def branches_of(principal: Principal | None) -> str:
    """The ``suvnet.branches`` setting of a caller: ``*`` every branch, ``3`` one branch,
    ``''`` nothing (no login)."""
    return NO_BRANCHES if principal is None else principal.branches


async def scope_connection(conn: AsyncConnection[Any], principal: Principal | None) -> None:
    """Give ``conn`` the scope of ``principal``: what the request may see and change.

    Contract (every path that hands a connection to request code calls this first, on every
    checkout from a pool: :func:`get_conn` here, :func:`api.syncdb.run_sync`, the read-replica
    connection of :mod:`api.readconn`):

    * one round trip: ``SET ROLE suvnet_app`` and ``suvnet.branches`` = ``*`` (a regional
      user, a customer), the user's branch id (a branch user), or ``''`` for ``None`` (a
      request without a login: it sees no branch's rows at all);
    * session-level settings (``set_config(..., false)``), so they hold in autocommit mode
      and across commits. They are not undone when the connection goes back to the pool:
      the next checkout sets them again, which is why every checkout must call this. Code
      that borrows a pooled connection without calling it may find the previous request's
      scope (only ever narrower than the owner's; never use such a connection for data);
    * after it the connection can no longer do what needs the login role itself (DDL,
      ``pg_stat_replication`` details, ``pg_terminate_backend``): do that on a connection
      of its own, before calling this;
    * ``principal`` must already be checked against the users table (:func:`require` did
      it), since its ``branch_id`` comes from the token.
    """
    await conn.execute(SCOPE_SQL, (APP_ROLE, branches_of(principal)))


_NEEDS_ATTR = "_suvnet_needs"


def _route_needs(request: Request) -> tuple[bool, bool]:
    """(uses :func:`get_conn`, checks a login) for the request's route, from its dependency
    tree (worked out once per route)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return False, False
    hit: tuple[bool, bool] | None = getattr(route, _NEEDS_ATTR, None)
    if hit is None:
        conn = login = False
        todo = list(dependant.dependencies)
        while todo:
            dep = todo.pop()
            conn = conn or dep.call is get_conn
            login = login or dep.call is current_principal or hasattr(dep.call, "allowed_roles")
            todo.extend(dep.dependencies)
        hit = (conn, login)
        setattr(route, _NEEDS_ATTR, hit)
    return hit


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppState:
    """What the request handlers share. ``clock`` is replaceable so tests can move time."""

    settings: Settings
    db_url: str
    topics: Topics
    clock: Callable[[], datetime] = utcnow
    rate_limit: RateLimitPolicy = field(default_factory=RateLimitPolicy)
    command_timeout_s: float = 10.0
    pool: AsyncConnectionPool | None = None

    pool_url: str = ""
    """The database URL the pool was opened with."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    """Background jobs (billing runs) started by this worker; cancelled at shutdown."""
    replica: Any = None
    """The read replica (api.readconn.ReadReplica) when SUVNET_DATABASE_READ_URL is set."""
    sync_pool: Any = None
    """A synchronous pool for calls into billing (opened on first use, see api.syncdb)."""
    body_limits: BodyLimits = field(default_factory=lambda: BodyLimits(1 << 20, 25 << 20))
    """Request body limits and their counters (api.limits; set from the settings)."""

    @property
    def secret(self) -> str:
        return self.settings.secret_key

    @property
    def secure_cookies(self) -> bool:
        return self.settings.mode == "production"


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.suvnet
    # the worker threads of api.syncdb see this request's caller (none yet: nobody)
    request_principal.set((request.scope.get("state") or {}).get(PRINCIPAL_KEY))
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_conn(request: Request) -> AsyncIterator[AsyncConnection[DictRow]]:
    """A pooled connection. For requests that change something (POST, PATCH...) it is in a
    transaction: committed when the handler returns normally, rolled back when it raises.
    Reads (GET, HEAD) run in autocommit mode, which saves the BEGIN/COMMIT round trips.

    It has the caller's scope (:func:`scope_connection`) before anything reads through it:
    set here when the caller is known, in the statement that checks the login when that
    check waited for this connection, or by :func:`current_principal` right after when the
    login is checked later in the request; a request without a login sees no branch."""
    st = get_state(request)
    assert st.pool is not None, "the database pool is not open"
    read_only = request.method in SAFE_METHODS
    async with st.pool.connection() as conn:
        conn.row_factory = dict_row  # type: ignore[assignment]
        if read_only:
            await conn.set_autocommit(True)
        state = request.scope.setdefault("state", {})
        pending = state.pop(PENDING_KEY, None)
        if pending is not None:
            await users.check_principal(conn, pending, scope=True)
        elif PRINCIPAL_KEY in state:
            await scope_connection(conn, state[PRINCIPAL_KEY])
        elif not _route_needs(request)[1]:
            await scope_connection(conn, None)
        # else: the login is checked (and this connection scoped) before the handler runs
        state[CONN_KEY] = conn
        try:
            yield conn  # type: ignore[misc]
        except psycopg.errors.InsufficientPrivilege as exc:
            refusal = other_branch(exc)
            if refusal is None:
                raise
            raise refusal from exc
        finally:
            state.pop(CONN_KEY, None)
            if read_only:
                await conn.set_autocommit(False)


Conn = Annotated[AsyncConnection[DictRow], Depends(get_conn)]


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if not auth:
        return None
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticatedError("the Authorization header must be 'Bearer <access token>'")
    return token.strip()


async def current_principal(request: Request) -> Principal:
    """The caller, from a Bearer access token or the session cookie of the web pages.

    A request authenticated by the cookie that changes something must carry the CSRF token
    (form field ``csrf_token`` or header ``X-CSRF-Token``) that matches the CSRF cookie.
    """
    st = get_state(request)
    token = _bearer(request)
    via_cookie = False
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        via_cookie = token is not None
    if not token:
        raise NotAuthenticatedError("log in first (no access token)")
    principal = read_access_token(token, st.secret, st.clock())
    await check_user(request, st, token, principal)
    request.scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
    request_principal.set(principal)
    if via_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not csrf_ok(st.secret, request.cookies.get(CSRF_COOKIE), sent):
            raise ForbiddenError(
                "the form has expired or did not come from this site; reload the page"
            )
    return principal


async def check_user(request: Request, st: AppState, token: str, principal: Principal) -> None:
    """The token's user must exist, be active, have the token's role, account, branch and
    token version (api.users.check_principal): one primary-key lookup per request.

    It runs on the request's own connection when :func:`get_conn` already gave it one (and
    gives it the caller's scope in the same statement); when the route takes its connection
    later, :func:`get_conn` does both then; otherwise on a connection borrowed for the
    lookup alone, so a request never holds two at a time.
    """
    state = request.scope.setdefault("state", {})
    conn = state.get(CONN_KEY)
    if state.get(CHECKED_KEY) == (token, principal):
        if conn is not None:
            await scope_connection(conn, principal)
        return
    if conn is not None:
        await users.check_principal(conn, principal, scope=True)
        return
    if _route_needs(request)[0]:
        state[PENDING_KEY] = principal
        return
    await check_on_own_connection(st, principal)


async def check_on_own_connection(st: AppState, principal: Principal) -> None:
    """:func:`api.users.check_principal` on a connection borrowed for the lookup alone
    (in autocommit: no BEGIN/COMMIT round trips)."""
    assert st.pool is not None, "the database pool is not open"
    async with st.pool.connection() as own:
        await own.set_autocommit(True)
        try:
            await users.check_principal(own, principal)
        finally:
            await own.set_autocommit(False)


def refuse_role(principal: Principal, roles: frozenset[Role]) -> None:
    """403 unless the caller's role is one of ``roles`` (:func:`require`, :func:`scoped_read`)."""
    if principal.role not in roles:
        raise ForbiddenError(f"the role '{principal.role.value}' may not do this")


async def scoped_read(
    request: Request, roles: frozenset[Role], sql: str, params: tuple[Any, ...]
) -> list[tuple[Any, ...]] | None:
    """The whole database work of a simple read in one round trip, for the busiest routes
    (:mod:`api.lean`): the caller's login check with its scope, then ``sql``, sent together
    in one pipeline on one pooled connection in autocommit mode. Returns the rows of ``sql``,
    or None when the request is not a plain Bearer-token call (a page's cookie session, a
    missing or malformed header): the route's ordinary handler then serves it, with its
    own checks and error messages.

    The same checks and scope as :func:`require` + :func:`get_conn`, in the same order: the
    token's signature and expiry, the role (403), then the users-table check (401), which
    decides whether the rows are returned. ``sql`` runs with the token's scope (role
    suvnet_app and the token's branches) before that check's answer is read; when the check
    refuses, its rows are dropped unread and the caller gets the 401."""
    auth = request.headers.get("authorization")
    if not auth or auth[:7].lower() != "bearer " or not auth[7:].strip():
        return None
    st: AppState = request.app.state.suvnet
    assert st.pool is not None, "the database pool is not open"
    principal = read_access_token(auth[7:].strip(), st.secret, st.clock())
    refuse_role(principal, roles)
    request.scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
    request_principal.set(principal)
    async with st.pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            async with conn.pipeline():
                check = conn.cursor(row_factory=tuple_row)
                read = conn.cursor(row_factory=tuple_row)
                await check.execute(
                    users.CHECK_AND_SCOPE_SQL,
                    (APP_ROLE, principal.branches, principal.user_id),
                )
                await read.execute(sql, params)
                user = await check.fetchone()
                rows = await read.fetchall()
        finally:
            await conn.set_autocommit(False)
    problem = token_problem(principal, None if user is None else tuple(user)[:6])
    if problem is not None:
        raise NotAuthenticatedError(problem)
    return rows


def require(*groups: Iterable[Role] | Role) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must have one of the given roles (or role sets)."""
    allowed: set[Role] = set()
    for g in groups:
        if isinstance(g, Role):
            allowed.add(g)
        else:
            allowed.update(g)
    frozen = frozenset(allowed)

    async def dependency(request: Request) -> Principal:
        # current_principal is called directly, not as a sub-dependency: one level less for
        # FastAPI to solve on every request
        principal = await current_principal(request)
        refuse_role(principal, frozen)
        return principal

    dependency.allowed_roles = frozen  # type: ignore[attr-defined]
    return dependency


def page(
    limit: Annotated[int, Query(ge=1, le=1000, description="rows per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000_000, description="rows to skip")] = 0,
) -> Page:
    return Page(limit, offset)


Paging = Annotated[Page, Depends(page)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
