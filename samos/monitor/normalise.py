"""Normalise at the edge: any chunk -> mono float32 at 16 kHz and 48 kHz, aligned (lengths T and 3T).

One stateful soxr stream per output rate (quality ``samos.audio.RESAMPLE_QUALITY``), so that feeding
a stream in chunks of any size gives exactly the samples of one-shot resampling. soxr emits
irregular amounts per chunk; we hold back whatever is not yet matched (16 k sample ``i`` always pairs
with 48 k samples ``3i .. 3i+2``). Pure computation: no I/O.

Lost audio stays at its place in the stream: a chunk's ``dropped`` samples (lost before it, absent
from the chunk) become that much silence before its samples (up to ``max_gap_seconds`` per gap; a
longer gap is cut to that, so that a device gone for an hour does not fill memory with silence), and
its ``concealed`` samples (codec concealment) pass as they are. Either way each segment names the
spans of the stream that hold lost audio (``Segment.lost``), so every window can say how much of it
was lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from samos.audio import RATE_RATIO, RESAMPLE_QUALITY, SPEC_RATE, SSL_RATE, check_rate, to_mono
from samos.monitor import pool
from samos.monitor.source import AudioChunk

_EMPTY = np.zeros(0, np.float32)
MAX_SAMPLE = 1e30
"""Input samples beyond this magnitude are clipped to it, so that no resampler sum can overflow float32:
every segment is finite (far beyond any real audio, whose full scale is 1.0)."""
MAX_GAP_SECONDS = 30.0
"""Longest run of silence put in place of one gap of lost audio (s); the rest of a longer gap is cut."""


@dataclass(frozen=True)
class Segment:
    """Normalised audio: ``wave16`` float32 ``[n]`` at 16 kHz, ``wave48`` float32 ``[3n]`` at 48 kHz.

    ``t_capture``: capture time (monotonic s) of the chunk that released these samples;
    ``dropped_seconds``: audio known lost in the chunk (silence put in its place, concealed, or cut
    from a gap longer than ``MAX_GAP_SECONDS``); ``rate``: the source's native rate (Hz);
    ``invalid``: NaN/Inf input samples replaced by 0 (samples are always finite: beyond
    ``MAX_SAMPLE`` in magnitude, input is clipped to it). ``lost``: ``(start, end)`` spans of the stream
    in 16 kHz samples from its start (absolute, end exclusive) that hold lost audio; because of the
    resamplers' delay a span may lie partly after the samples this segment releases.

    A wave at the source's own rate may be a view of the pushed chunk's samples (which no source
    writes again, :class:`~samos.monitor.source.AudioChunk`), or of a buffer lent by
    :data:`samos.monitor.pool.POOL`.
    """

    wave16: np.ndarray
    wave48: np.ndarray
    t_capture: float
    dropped_seconds: float = 0.0
    rate: int = SPEC_RATE
    invalid: int = 0
    lost: tuple[tuple[int, int], ...] = ()


class _Identity:
    """Same-rate 'resampling' (as samos.audio.resample does for equal rates): the samples themselves,
    not a copy (:meth:`Normaliser._pair` copies what it holds back, so no segment aliases a chunk's
    samples beyond the push that returned it)."""

    def resample_chunk(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        return x


def _stream(rate_in: int, rate_out: int) -> soxr.ResampleStream | _Identity:
    if rate_in == rate_out:
        return _Identity()
    return soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality=RESAMPLE_QUALITY)


class Normaliser:
    """Streaming mono + resampling for one stream. ``push(chunk) -> Segment``; ``flush() -> Segment``.

    A change of input rate mid-stream flushes the resamplers and starts new ones at the new rate.
    ``max_gap_seconds``: see the module doc.
    """

    def __init__(self, rate: int, max_gap_seconds: float = MAX_GAP_SECONDS) -> None:
        if not max_gap_seconds >= 0:
            raise ValueError(f"max_gap_seconds must be >= 0, got {max_gap_seconds!r}")
        self.max_gap_seconds = max_gap_seconds
        self.rate = check_rate(rate)
        self._open(self.rate)
        self._t_capture = 0.0
        self._out16 = 0  # 16 kHz samples released so far
        self._base16 = 0  # 16 kHz position where the current input rate began
        self._pos = 0  # input samples (silence included) fed at the current rate

    def _open(self, rate: int) -> None:
        self._r16 = _stream(rate, SSL_RATE)
        self._r48 = _stream(rate, SPEC_RATE)
        self._held16 = _EMPTY
        self._held48 = _EMPTY

    def _pair(self, w16: np.ndarray, w48: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = pool.concatenate([self._held16, w16]) if self._held16.size else w16
        b = pool.concatenate([self._held48, w48]) if self._held48.size else w48
        n = min(len(a), len(b) // RATE_RATIO)
        # what waits for its pair is copied: it may be a view of the chunk's own samples (_Identity)
        self._held16, self._held48 = a[n:].copy(), b[n * RATE_RATIO :].copy()
        return np.asarray(a[:n], np.float32), np.asarray(b[: n * RATE_RATIO], np.float32)

    def push(self, chunk: AudioChunk) -> Segment:
        """Normalise one chunk (any size, possibly empty, int or float PCM, mono or [n, ch])."""
        pre: tuple[np.ndarray, np.ndarray] | None = None
        if chunk.rate != self.rate:
            pre = self._drain()
            self.rate = check_rate(chunk.rate)
            self._open(self.rate)
            self._base16 = self._out16 + len(pre[0])
            self._pos = 0
        x = np.ascontiguousarray(to_mono(chunk.samples))
        invalid = 0
        if x.size and not max(float(x.max()), -float(x.min())) <= MAX_SAMPLE:  # NaN fails it too
            bad = ~np.isfinite(x)
            invalid = int(bad.sum())
            x = np.clip(np.where(bad, np.float32(0.0), x), -MAX_SAMPLE, MAX_SAMPLE)
        fill = self.fill(chunk.dropped)
        lost: tuple[tuple[int, int], ...] = ()
        if fill or chunk.concealed:
            lost = ((self._at16(self._pos), self._at16(self._pos + fill + chunk.concealed)),)
        if fill:
            x = np.concatenate([np.zeros(fill, np.float32), x])
        self._pos += len(x)
        w16, w48 = self._pair(self._r16.resample_chunk(x), self._r48.resample_chunk(x))
        if pre is not None:
            w16, w48 = np.concatenate([pre[0], w16]), np.concatenate([pre[1], w48])
        self._out16 += len(w16)
        self._t_capture = chunk.t_capture
        lost_seconds = (chunk.dropped + chunk.concealed) / chunk.rate
        return Segment(w16, w48, chunk.t_capture, lost_seconds, self.rate, invalid, lost)

    def _at16(self, pos: int) -> int:
        """16 kHz stream position of input sample ``pos`` (at the current rate, rounded half up)."""
        return self._base16 + (2 * pos * SSL_RATE + self.rate) // (2 * self.rate)

    def at16(self, more: int) -> int:
        """16 kHz samples the stream would hold after ``more`` further input samples at the current
        rate if the resamplers released everything: an upper bound of what they release (they only
        hold samples back)."""
        return self._at16(self._pos + more)

    def fill(self, dropped: int) -> int:
        """Samples of silence :meth:`push` puts in place of ``dropped`` lost samples."""
        return min(dropped, round(self.max_gap_seconds * self.rate))

    def _drain(self) -> tuple[np.ndarray, np.ndarray]:
        w16, w48 = self._pair(
            self._r16.resample_chunk(_EMPTY, last=True), self._r48.resample_chunk(_EMPTY, last=True)
        )
        self._held16, self._held48 = _EMPTY, _EMPTY  # an unmatched tail of < 1/16000 s is discarded
        return w16, w48

    def flush(self) -> Segment:
        """End of stream: the resamplers' delayed tail (then the normaliser is spent)."""
        w16, w48 = self._drain()
        self._out16 += len(w16)
        return Segment(w16, w48, self._t_capture, 0.0, self.rate)
