"""Calling the billing package (synchronous psycopg) from the async API.

Billing's functions take a synchronous connection. They run in a worker thread on a
connection from a small synchronous pool that opens on first use; the call's work is
committed when the function returns and rolled back when it raises.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from api.deps import AppState
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


def _call(st: AppState, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    with _pool(st).connection() as conn:  # commits on success, rolls back on error
        return fn(conn, *args, **kwargs)


async def run_sync(st: AppState, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(conn, *args, **kwargs)`` in a thread, in one transaction."""
    return await asyncio.to_thread(_call, st, fn, args, kwargs)
