"""Waiting on calls into client libraries that may not honour a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from leadrelay.unavailable import cancel_and_wait, within


async def swallows(times: float, finished: list[str]) -> None:
    """Swallows its first ``times`` cancellations (as a driver in the middle of a query may), or
    every one until ``finished`` holds "let go"."""
    swallowed = 0
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed += 1
            if swallowed > times or "let go" in finished:
                finished.append("stopped")
                raise


async def test_cancel_and_wait_cancels_again_until_the_task_stops() -> None:
    finished: list[str] = []
    plain = asyncio.create_task(asyncio.sleep(3600))
    stubborn = asyncio.create_task(swallows(2, finished))
    await asyncio.sleep(0)
    assert await cancel_and_wait([plain, stubborn], timeout=10) == set()
    assert plain.cancelled() and stubborn.cancelled() and finished == ["stopped"]


async def test_cancel_and_wait_gives_up_after_its_timeout_and_names_what_is_left() -> None:
    finished: list[str] = []
    forever = asyncio.create_task(swallows(float("inf"), finished))
    done = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    assert await cancel_and_wait([forever, done], timeout=1.5) == {forever}
    assert not forever.done()
    finished.append("let go")
    assert await cancel_and_wait([forever]) == set()


async def test_within_gives_up_without_waiting_for_the_cancelled_call() -> None:
    finished: list[str] = []
    with pytest.raises(TimeoutError):
        await within(0.1, swallows(1, finished))
