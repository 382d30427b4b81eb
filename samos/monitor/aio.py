"""asyncio helpers shared by the sources.

``within(awaitable, seconds)``: ``await`` with a time limit that never loses a cancellation. In
Python 3.11, ``asyncio.wait_for`` swallows a cancel that arrives in the same loop iteration as the
awaited result (CPython gh-86296, fixed in 3.12): a source's reader cancelled at shutdown while
audio is flowing would then keep reading forever. ``asyncio.timeout`` (3.11+) has no such race.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

if sys.version_info >= (3, 11):

    async def within(aw: Awaitable[T], seconds: float | None) -> T:
        """``await aw``, or TimeoutError after ``seconds`` (None: no limit)."""
        async with asyncio.timeout(seconds):
            return await aw

else:  # pragma: no cover - Python 3.10 has no asyncio.timeout; wait_for keeps its race there

    async def within(aw: Awaitable[T], seconds: float | None) -> T:
        """``await aw``, or TimeoutError after ``seconds`` (None: no limit)."""
        return await asyncio.wait_for(aw, seconds)
