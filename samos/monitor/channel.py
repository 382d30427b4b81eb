"""A bounded, drop-oldest channel from any thread into an asyncio event loop.

Threads (sound-card callbacks, the inference worker) never call into the loop directly except to
wake it: ``put`` appends under a lock, drops (and counts) the oldest item when full, and schedules at
most one wake-up per empty->non-empty transition, so the loop's own callback queue stays bounded.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class ChannelClosed(Exception):
    """``get`` on a closed channel with nothing left in it."""


class ThreadChannel(Generic[T]):
    """Bounded queue: ``put`` from any thread (never blocks), ``await get()`` on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._loop = loop
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._wake_pending = False
        self._closed = False
        self.dropped = 0
        """Items dropped (oldest first) because the channel was full."""

    def put(self, item: T) -> T | None:
        """Append ``item``; returns the dropped oldest item when the channel was full, else None."""
        evicted: T | None = None
        with self._lock:
            if self._closed:
                return None
            if len(self._items) >= self._maxsize:
                evicted = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # loop closed during shutdown
                pass
        return evicted

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        self._ready.set()

    def close(self) -> None:
        """No more items; pending ``get`` calls return what is left, then raise ChannelClosed."""
        with self._lock:
            self._closed = True
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:
            pass

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def get_nowait(self) -> T | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    async def get(self) -> T:
        """The oldest item; waits while empty; ChannelClosed once closed and drained."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    raise ChannelClosed
                self._ready.clear()
            await self._ready.wait()
