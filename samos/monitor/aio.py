"""asyncio helpers: the event loop the monitor runs on, and a time limit that keeps cancellations.

``loop_factory(event_loop)``: the loop the monitor runs on: uvloop (``"auto"`` where it is
installed; the ``monitor`` extra installs it on Linux and macOS) or asyncio's own loop. It
matters for WebRTC ingest: asyncio's selector loop reads one datagram per socket per loop iteration,
so with a few dozen peers at 50 packets per second the kernel's receive queues grow without bound
(and with them the delay of ICE consent checks, until peers time out); uvloop reads every datagram
that is ready each time (measured in docs/RELIABILITY.md).

``within(awaitable, seconds)``: ``await`` with a time limit that never loses a cancellation. In
Python 3.11, ``asyncio.wait_for`` swallows a cancel that arrives in the same loop iteration as the
awaited result (CPython gh-86296, fixed in 3.12): a source's reader cancelled at shutdown while
audio is flowing would then keep reading forever. ``asyncio.timeout`` (3.11+) has no such race.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def loop_factory(event_loop: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop constructor for ``event_loop`` (one of :data:`EVENT_LOOPS`); None: asyncio's default.

    ``"uvloop"`` when uvloop is not installed raises ValueError with how to get it.
    """
    if event_loop not in EVENT_LOOPS:
        raise ValueError(f"event_loop must be one of {', '.join(EVENT_LOOPS)}, got {event_loop!r}")
    if event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if event_loop == "uvloop":
            raise ValueError(
                "event_loop uvloop: uvloop is not installed (pip install 'samos[monitor]' on Linux or macOS)"
            ) from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: Callable[[], asyncio.AbstractEventLoop] | None) -> T:
    """``asyncio.run(main)`` on a loop from ``factory`` (None: asyncio's own)."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    if factory is not None:  # pragma: no cover - Python 3.10
        asyncio.set_event_loop(factory())
    return asyncio.get_event_loop().run_until_complete(main)  # pragma: no cover - Python 3.10


def loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: what the running loop is (logged at start-up)."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"

if sys.version_info >= (3, 11):

    async def within(aw: Awaitable[T], seconds: float | None) -> T:
        """``await aw``, or TimeoutError after ``seconds`` (None: no limit)."""
        async with asyncio.timeout(seconds):
            return await aw

else:  # pragma: no cover - Python 3.10 has no asyncio.timeout; wait_for keeps its race there

    async def within(aw: Awaitable[T], seconds: float | None) -> T:
        """``await aw``, or TimeoutError after ``seconds`` (None: no limit)."""
        return await asyncio.wait_for(aw, seconds)
