"""FastAPI dependencies: the app state, the database, the caller (``require``) and
pagination. (The audit log writer is :mod:`api.audit`.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from api import users
from api.errors import ForbiddenError, NotAuthenticatedError
from api.limits import BodyLimits
from api.security import Principal, RateLimitPolicy, Role, csrf_ok, read_access_token
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
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_conn(request: Request) -> AsyncIterator[AsyncConnection[DictRow]]:
    """A pooled connection. For requests that change something (POST, PATCH...) it is in a
    transaction: committed when the handler returns normally, rolled back when it raises.
    Reads (GET, HEAD) run in autocommit mode, which saves the BEGIN/COMMIT round trips."""
    st = get_state(request)
    assert st.pool is not None, "the database pool is not open"
    read_only = request.method in SAFE_METHODS
    async with st.pool.connection() as conn:
        conn.row_factory = dict_row  # type: ignore[assignment]
        if read_only:
            await conn.set_autocommit(True)
        state = request.scope.setdefault("state", {})
        state[CONN_KEY] = conn
        try:
            yield conn  # type: ignore[misc]
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
    """The token's user must exist, be active, have the token's role, account and token
    version (api.users.check_principal): one primary-key lookup per request.

    It runs on the request's own connection when :func:`get_conn` already gave it one, else
    on a connection borrowed for the lookup alone, so a request never holds two at a time.
    """
    state = request.scope.get("state") or {}
    if state.get(CHECKED_KEY) == (token, principal):
        return
    conn = state.get(CONN_KEY)
    if conn is not None:
        await users.check_principal(conn, principal)
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
        if principal.role not in frozen:
            raise ForbiddenError(f"the role '{principal.role.value}' may not do this")
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
