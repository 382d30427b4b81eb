"""Decoded audio waiting for a source's ``recv``: batched hand-out, bounded with drop-oldest. Pure.

Network sources (RTP, telephony websockets) decode 10-20 ms frames as they arrive. Handing each one
to the pipeline would make everything downstream run 50-100 times a second per stream, so
:class:`ChunkQueue` hands out ``batch`` samples at a time (or what there is once the oldest sample
waited ``batch_seconds``), joined into one :class:`~samos.monitor.source.AudioChunk` but never across
lost or concealed audio, so each ``dropped`` and ``concealed`` stays where it was. When more than
``max_samples`` wait, the oldest are dropped and reported as ``dropped`` before what follows
(``overflow`` counts them).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from samos.monitor.source import AudioChunk


@dataclass
class _Piece:
    samples: np.ndarray
    dropped: int
    t: float
    concealed: int = 0


class ChunkQueue:
    """Audio pieces at ``rate`` Hz: ``put`` them, ``take`` a chunk when ``ready``.

    ``batch_seconds``: the amount (and the longest wait of the oldest sample) per chunk.
    ``max_samples``: samples held at most (None: unbounded; the caller bounds what it puts).
    """

    def __init__(self, rate: int, batch_seconds: float = 0.1, max_samples: int | None = None) -> None:
        self.rate = rate
        self.batch_seconds = batch_seconds
        self._batch = max(1, round(batch_seconds * rate))
        self.max_samples = max_samples
        self._pieces: deque[_Piece] = deque()
        self.buffered = 0
        """Samples held."""
        self.overflow = 0
        """Samples dropped because more than ``max_samples`` waited."""

    def __len__(self) -> int:
        return len(self._pieces)

    def put(self, samples: np.ndarray, dropped: int, t: float, concealed: int = 0) -> None:
        """Add decoded audio (``[n]`` or ``[n, ch]``) that follows ``dropped`` lost samples; ``t``:
        monotonic time its last sample arrived; ``concealed``: its first samples that are the
        decoder's concealment of lost audio (see :class:`~samos.monitor.source.AudioChunk`)."""
        if not len(samples) and not dropped:
            return
        self._pieces.append(_Piece(samples, dropped, t, concealed))
        self.buffered += len(samples)
        if self.max_samples is None:
            return
        lost = 0
        while self.buffered > self.max_samples and len(self._pieces) > 1:
            old = self._pieces.popleft()
            self.buffered -= len(old.samples)
            self.overflow += len(old.samples)
            lost += old.dropped + len(old.samples)
        if lost:
            self._pieces[0].dropped += lost

    def ready(self, now: float) -> bool:
        """A chunk may be handed out: a batch is held, or the oldest sample waited long enough."""
        return bool(self._pieces) and (
            self.buffered >= self._batch or now >= self._pieces[0].t + self.batch_seconds
        )

    def wait_limit(self, now: float) -> float | None:
        """Seconds until :meth:`ready` turns true by itself (None: nothing held)."""
        if not self._pieces:
            return None
        return max(0.0, self._pieces[0].t + self.batch_seconds - now)

    def take(self) -> AudioChunk:
        """The oldest pieces as one chunk, up to (not including) the next one that follows lost audio
        or starts with concealment."""
        first = self._pieces.popleft()
        parts, last = [first.samples], first
        while self._pieces and not (self._pieces[0].dropped or self._pieces[0].concealed):
            last = self._pieces.popleft()
            parts.append(last.samples)
        samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self.buffered -= len(samples)
        return AudioChunk(samples, self.rate, first.dropped, last.t, first.concealed)

    def clear(self) -> None:
        self._pieces.clear()
        self.buffered = 0
