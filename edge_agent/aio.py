"""Timeouts that never swallow a cancellation.

On Python 3.11 ``asyncio.wait_for`` and ``asyncio.timeout`` can lose a ``cancel()`` that
arrives at the moment their timer fires (fixed in 3.12); a long-running loop that catches the
resulting ``TimeoutError`` then never stops. These helpers are built on ``asyncio.wait``,
which only ever raises ``CancelledError`` for the caller's own cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes; True when it was set."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait([waiter], timeout=timeout_s)
    finally:
        waiter.cancel()
    return bool(done)


async def with_timeout(coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
    """Run ``coro``; raise :class:`TimeoutError` (after stopping it) when it takes too long."""
    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait([task], timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.wait([task])
        raise TimeoutError
    return task.result()
