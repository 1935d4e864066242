"""The agent's asyncio helpers: a stop must never be lost."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.aio import cancel_and_wait, wait_event, with_timeout


async def test_cancel_and_wait_cancels_again_a_task_that_swallowed_its_cancel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()  # what asyncio.wait_for does on 3.11 when the result lands too
        await asyncio.sleep(3600)

    polite = asyncio.create_task(asyncio.sleep(3600), name="polite")
    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([polite, task], again_after_s=0.05), 5)
    assert swallowed.is_set()
    assert polite.cancelled() and task.cancelled()
    assert "task stubborn ran on after it was cancelled" in caplog.text
    assert "polite" not in caplog.text


async def test_wait_event_and_with_timeout() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True
    assert await with_timeout(asyncio.sleep(0, result=7), 5) == 7
    slow = asyncio.sleep(3600)
    with pytest.raises(TimeoutError):
        await with_timeout(slow, 0.01)
