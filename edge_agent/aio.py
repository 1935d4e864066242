"""Timeouts that never swallow a cancellation.

On Python 3.11 ``asyncio.wait_for`` and ``asyncio.timeout`` can lose a ``cancel()`` that
arrives at the moment their timer fires (fixed in 3.12); a long-running loop that catches the
resulting ``TimeoutError`` then never stops. These helpers are built on ``asyncio.wait``,
which only ever raises ``CancelledError`` for the caller's own cancellation.

The libraries the agent awaits still use ``asyncio.wait_for`` inside (aiomqtt for every
publish and connect, pymodbus for every request). On Python 3.11 it returns the operation's
result instead of raising when the operation completes in the same loop pass as the
``cancel()`` (bpo-42130, fixed in 3.12), so a task can run on after it was cancelled:
:func:`cancel_and_wait` cancels such a task again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], again_after_s: float = 5.0) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again any that runs on."""
    pending = set(tasks)
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=again_after_s)
        for task in pending:
            log.warning(
                "task %s ran on after it was cancelled; cancelling it again", task.get_name()
            )
            task.cancel()


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
