"""A fake Source for unit tests: plays a list of chunks (optionally paced), then ends or fails.

Imported by tests as ``from fake_source import ...`` (pytest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from samos.monitor.source import AudioChunk, SourceEnded


def split(audio: np.ndarray, sizes: list[int] | int) -> list[np.ndarray]:
    """Cut ``audio`` into consecutive pieces of the given sizes (an int: equal pieces; the rest last)."""
    if isinstance(sizes, int):
        sizes = [sizes] * (len(audio) // sizes + 1)
    out, i = [], 0
    for n in sizes:
        if i >= len(audio):
            break
        out.append(audio[i : i + n])
        i += n
    if i < len(audio):
        out.append(audio[i:])
    return out


class ListSource:
    """Delivers ``pieces`` at ``rate`` (``pace``: seconds between chunks; ``forever``: block at the
    end until closed; ``fail``: raise this at the end instead of SourceEnded)."""

    kind = "fake"

    def __init__(
        self,
        name: str,
        pieces: list[np.ndarray],
        rate: int,
        pace: float = 0.0,
        forever: bool = False,
        fail: Exception | None = None,
        dropped: dict[int, int] | None = None,
    ) -> None:
        self.name, self.rate = name, rate
        self._pieces = list(pieces)
        self._i = 0
        self.pace, self.forever, self.fail = pace, forever, fail
        self._dropped = dropped or {}
        self._closed = asyncio.Event()
        self.closed = False

    async def recv(self) -> AudioChunk:
        if self.closed:
            raise SourceEnded
        if self._i >= len(self._pieces):
            if self.fail is not None:
                raise self.fail
            if self.forever:
                await self._closed.wait()
            raise SourceEnded
        if self.pace:
            await asyncio.sleep(self.pace)
        piece = self._pieces[self._i]
        dropped = self._dropped.get(self._i, 0)
        self._i += 1
        return AudioChunk(piece, self.rate, dropped, time.monotonic())

    async def close(self) -> None:
        self.closed = True
        self._closed.set()
