"""Calling the billing package (synchronous psycopg) from the async API.

Billing's functions take a synchronous connection. They run in a worker thread on a
connection from a small synchronous pool that opens on first use; the call's work is
committed when the function returns and rolled back when it raises.

Every such connection has the scope of the request's caller (docs/branches.md), set by
:func:`scope_sync_connection` in the call's first statement, so that billing's queries see
only the caller's branches as the async queries do (:func:`api.deps.scope_connection`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from api.deps import SCOPE_SQL, AppState, branches_of, other_branch, request_principal
from api.security import ALL_BRANCHES, APP_ROLE, Principal
from suvnet.db import make_pool

T = TypeVar("T")
_lock = threading.Lock()


def _pool(st: AppState) -> Any:
    with _lock:
        if st.sync_pool is None:
            st.sync_pool = make_pool(
                st.pool_url,
                min_size=1,
                max_size=max(2, st.settings.db_pool_max // 2),
                name="suvnet-api-sync",
                checkout_timeout_s=st.settings.db_pool_timeout_s,
            )
        return st.sync_pool


def scope_sync_connection(conn: Any, principal: Principal | None) -> None:
    """:func:`api.deps.scope_connection` for a synchronous connection, with the same
    contract: ``SET ROLE suvnet_app`` and ``suvnet.branches`` of ``principal`` (``''``, no
    branch at all, for ``None``), session-level, on every checkout before anything reads."""
    conn.execute(SCOPE_SQL, (APP_ROLE, branches_of(principal)))


def _call(
    st: AppState,
    scope: str | None,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    with _pool(st).connection() as conn:  # commits on success, rolls back on error
        if scope is None:
            scope_sync_connection(conn, request_principal.get())
        else:
            conn.execute(SCOPE_SQL, (APP_ROLE, scope))
        try:
            return fn(conn, *args, **kwargs)
        except psycopg.errors.InsufficientPrivilege as exc:
            refusal = other_branch(exc)
            if refusal is None:
                raise
            raise refusal from exc


async def run_sync(st: AppState, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(conn, *args, **kwargs)`` in a thread, in one transaction, with the scope of the
    request's caller (a request without a login: no branch's rows)."""
    return await asyncio.to_thread(_call, st, None, fn, args, kwargs)


async def run_sync_all_branches(st: AppState, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`run_sync` for work of the whole installation, whoever asked: the monthly
    billing run, the payment providers' callbacks (which then check the account against the
    merchant's branch themselves). The connection sees every branch."""
    return await asyncio.to_thread(_call, st, ALL_BRANCHES, fn, args, kwargs)
