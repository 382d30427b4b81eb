"""`within`: a time limit that keeps a cancellation racing the awaited result (wait_for in 3.11 loses it)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from samos.monitor.aio import within


async def _cancel_as_result_arrives() -> object:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(within(fut, 5.0))
    await asyncio.sleep(0)  # the task now waits on fut
    fut.set_result(1)  # the result and the cancel land in the same loop iteration
    task.cancel()
    return await task


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 falls back to wait_for")
async def test_a_cancel_that_races_the_result_is_not_lost() -> None:
    with pytest.raises(asyncio.CancelledError):
        await _cancel_as_result_arrives()


async def test_result_and_timeout() -> None:
    assert await within(asyncio.sleep(0, "x"), 1.0) == "x"
    assert await within(asyncio.sleep(0, "y"), None) == "y"
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.05)
