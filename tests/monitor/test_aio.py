"""`within`: a time limit that keeps a cancellation racing the awaited result (wait_for in 3.11 loses it);
the event loop the monitor runs on (uvloop or asyncio)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from samos.monitor.aio import loop_factory, loop_name, run, within


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


def test_loop_factory_picks_uvloop_where_installed_and_says_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None
    with pytest.raises(ValueError, match="event_loop must be one of"):
        loop_factory("trio")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert loop_factory("auto") is None
    with pytest.raises(ValueError, match=r"uvloop is not installed \(pip install 'samos\[monitor\]'"):
        loop_factory("uvloop")


@pytest.mark.parametrize("name", ["asyncio", "uvloop"])
def test_run_runs_on_the_loop_asked_for(name: str) -> None:
    if name == "uvloop":
        pytest.importorskip("uvloop")

    async def which() -> str:
        return loop_name()

    assert run(which(), loop_factory(name)) == name
