"""Windowing as a pure state machine: ``push(segment) -> [Window]``, ``flush() -> [Window]``.

Windows are ``window_seconds`` long and start every ``hop_seconds`` (both rounded to whole 16 kHz
samples; sub-second hops work). Only the number of samples pushed matters, never how they were
chunked, so chunked input gives exactly the windows of whole-file input.

At the end (``flush``): a stream that never filled a window gets one short window when it has at
least ``min_final_seconds``; otherwise, when the audio after the last window is at least half a hop,
one last full-length window ending at the end of the stream is emitted (``final=True``).

Lost audio (``Segment.lost``, silence or codec concealment at its place in the stream) is counted
per window: ``Window.lost_seconds`` is how much of the window's span was lost, ``loss_ratio`` that as
a fraction of the window.

Windows are read-only views, not copies: the windower appends each segment once to a buffer per
rate that is never written behind its end, and cuts windows out of it. When the buffer is full, what
the next windows need moves to a fresh one (about every ``window / hop + 1`` hops); the old buffer
lives on in the windows that view it. So overlapping windows cost no copies (a 4 s window at a 1 s
hop was 2.3 MB of copying per hop at 16 + 48 kHz, each copy into freshly mapped pages; see
docs/RELIABILITY.md, "Page faults").

The buffers are lent by :data:`samos.monitor.pool.POOL`, which lends a buffer again, to any stream,
once no window views it any more: writing into it faults in no freshly mapped pages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samos.audio import RATE_RATIO, SSL_RATE
from samos.monitor.normalise import Segment
from samos.monitor.pool import POOL


@dataclass(frozen=True)
class Window:
    """One scoring window: ``wave16`` float32 ``[T]`` and ``wave48`` ``[3T]`` (read-only views).

    ``index`` counts windows from 0; ``start`` is its first 16 kHz sample; ``t_start``/``t_end`` in
    stream seconds. ``t_capture``: monotonic capture time of the chunk that completed it.
    ``dropped_seconds``: audio lost since the previous window. ``rate``: the source's native rate.
    ``lost_seconds``: how much of this window's own span is lost audio (see the module doc).
    """

    index: int
    start: int
    wave16: np.ndarray
    wave48: np.ndarray
    t_capture: float
    dropped_seconds: float
    rate: int
    final: bool = False
    lost_seconds: float = 0.0

    @property
    def loss_ratio(self) -> float:
        """Fraction of the window's duration that was lost audio, in [0, 1]."""
        return min(1.0, self.lost_seconds * SSL_RATE / len(self.wave16)) if len(self.wave16) else 0.0

    @property
    def t_start(self) -> float:
        return self.start / SSL_RATE

    @property
    def t_end(self) -> float:
        return (self.start + len(self.wave16)) / SSL_RATE


class Windower:
    """Cuts one stream's normalised audio into overlapping windows."""

    def __init__(self, window_seconds: float, hop_seconds: float, min_final_seconds: float = 1.0) -> None:
        self.size = round(window_seconds * SSL_RATE)
        self.hop = round(hop_seconds * SSL_RATE)
        self.min_final = round(min_final_seconds * SSL_RATE)
        if self.size < 1 or not 1 <= self.hop <= self.size:
            raise ValueError(f"need 0 < hop <= window, got window {window_seconds} s, hop {hop_seconds} s")
        self._capacity = 2 * self.size + self.hop  # 16 kHz samples of a fresh buffer (at least)
        self._b16 = np.zeros(0, np.float32)
        self._b48 = np.zeros(0, np.float32)
        self._buf_start = 0  # 16 kHz index of the buffer's first sample (it holds up to `total`)
        self.total = 0  # 16 kHz samples pushed
        self._next = 0  # start of the next window
        self._count = 0
        self._last_end = 0
        self._dropped = 0.0
        self._t_capture = 0.0
        self._rate = 0
        self._lost: list[tuple[int, int]] = []  # spans of lost audio not yet behind every window

    @property
    def seconds(self) -> float:
        """Stream seconds pushed so far."""
        return self.total / SSL_RATE

    @property
    def next_end(self) -> int:
        """The 16 kHz stream position (samples pushed) at which the next window is complete."""
        return self._next + self.size

    def count(self, total: int) -> int:
        """How many windows :meth:`push` and :meth:`flush` make of a whole stream of ``total`` 16 kHz
        samples, without the audio (for benchmarks that know only how long a stream was). Follows
        the same rules: a window every hop, then the final one (see the module doc)."""
        if total < self.size:
            return 1 if 0 < total and total >= self.min_final else 0
        n = (total - self.size) // self.hop + 1
        last_end = (n - 1) * self.hop + self.size
        return n + (1 if 2 * (total - last_end) >= self.hop else 0)

    def push(self, seg: Segment) -> list[Window]:
        """Add a segment; return the windows it completes (oldest first)."""
        if len(seg.wave48) != RATE_RATIO * len(seg.wave16):
            raise ValueError(f"segment lengths {len(seg.wave16)} and {len(seg.wave48)} are not T and 3T")
        self._dropped += seg.dropped_seconds
        self._t_capture, self._rate = seg.t_capture, seg.rate
        self._lost.extend(span for span in seg.lost if span[1] > span[0])
        if len(seg.wave16):
            self._append(seg.wave16, seg.wave48)
        out = []
        while self.total - self._next >= self.size:
            out.append(self._cut(self._next, self.size, final=False))
            self._next += self.hop
        return out

    def flush(self) -> list[Window]:
        """End of stream: the final window, if any (see module doc). The windower is then spent."""
        if self.total == 0 or self.total == self._buf_start:
            return []
        out: list[Window] = []
        if self._count == 0:
            if self.total >= self.min_final:
                out.append(self._cut(0, self.total, final=True))
        elif 2 * (self.total - self._last_end) >= self.hop:
            out.append(self._cut(self.total - self.size, self.size, final=True))
        self._b16, self._b48 = np.zeros(0, np.float32), np.zeros(0, np.float32)
        self._buf_start = self.total
        return out

    def _append(self, w16: np.ndarray, w48: np.ndarray) -> None:
        """Write a segment behind the buffer's end; first move to a fresh buffer when it is full."""
        n = len(w16)
        fill = self.total - self._buf_start  # samples in the buffer
        if fill + n > len(self._b16):
            # what the next window and flush need: from the next window's start, and the last `size`
            keep = max(self._buf_start, min(self._next, self.total - self.size))
            i = keep - self._buf_start
            fill -= i
            b16 = POOL.lend(max(self._capacity, fill + n))
            b48 = POOL.lend(RATE_RATIO * len(b16))
            b16[:fill] = self._b16[i : i + fill]
            b48[: RATE_RATIO * fill] = self._b48[RATE_RATIO * i : RATE_RATIO * (i + fill)]
            self._b16, self._b48, self._buf_start = b16, b48, keep
            self._lost = [span for span in self._lost if span[1] > keep]
        self._b16[fill : fill + n] = w16
        self._b48[RATE_RATIO * fill : RATE_RATIO * (fill + n)] = w48
        self.total += n

    def _cut(self, start: int, n: int, final: bool) -> Window:
        i = start - self._buf_start
        end = start + n
        lost = sum(max(0, min(b, end) - max(a, start)) for a, b in self._lost)
        w16 = self._b16[i : i + n]
        w48 = self._b48[RATE_RATIO * i : RATE_RATIO * (i + n)]
        w16.flags.writeable = False  # views of the buffer that later windows share
        w48.flags.writeable = False
        w = Window(
            self._count, start, w16, w48, self._t_capture, self._dropped, self._rate, final, lost / SSL_RATE
        )
        self._count += 1
        self._last_end = start + n
        self._dropped = 0.0
        return w
