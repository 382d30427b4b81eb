"""Per-window signal diagnostics, and the speech gate that decides whether a window gets a MOS.

The gate reads the per-frame speech probabilities of the speech detector (Silero VAD,
:mod:`samos.runtime.vad`: 32 ms frames at 16 kHz); the caller runs the detector over the stream and
passes the probabilities of the frames that lie wholly inside the window. Levels are dB relative to
full scale (dBov: RMS of 1.0 = 0 dB, so a full-scale sine is -3 dBov), computed on the window's
48 kHz view in 20 ms frames (960 samples). Pure numpy, no I/O.

A stream's windows overlap (a 4 s window every 1 s holds each frame four times): the monitor passes
each stream's :class:`FrameStats`, which measures every frame's power, clipped samples and band
powers once for all the windows it lies in; the figures are bit for bit those of measuring each
window whole (tested).

- ``level_db``: the window's RMS level.
- ``active_ratio``: fraction of the window's detector frames that are speech (probability at least
  ``speech_threshold``).
- ``active_level_db``: level over the 20 ms frames inside speech frames (a simplified ITU-T P.56
  active speech level); NaN when there is no speech.
- ``clipping``: fraction of samples with magnitude >= 0.99 (at 48 kHz).
- ``bandwidth_hz`` / ``band``: the highest frequency whose 500 Hz band holds energy within
  ``BANDWIDTH_DROP_DB`` of the loudest band below 4 kHz (average spectrum of up to 50 speech frames,
  or of all frames when there is no speech; with more, every 2nd, 4th, ... frame of the stream's
  20 ms grid: :func:`spectrum_frames`), classed as ``nb`` (<= 4.5 kHz), ``wb`` (<= 8.5 kHz),
  ``swb`` (<= 16.5 kHz) or ``fb``.
- ``status``: ``silence`` (level below ``silence_db``: dead air), ``no_speech`` (a signal, but
  speech in fewer than ``min_active`` of its frames: noise, a line nobody talks on) or ``ok``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from samos.audio import RATE_RATIO, SPEC_RATE
from samos.runtime.vad import FRAME as VAD_FRAME

FRAME = SPEC_RATE // 50  # 20 ms at 48 kHz
CLIP_LEVEL = 0.99
BAND_HZ = 500
BANDWIDTH_DROP_DB = 60.0
BAND_CLASSES = ((4_500, "nb"), (8_500, "wb"), (16_500, "swb"), (24_001, "fb"))
_TINY = 1e-12
MAX_SPECTRUM_FRAMES = 50
SPECTRUM_BLOCK = 16
"""Frames per FFT call: keeps each temporary (at most 123 KB for 16 frames: numpy < 2 takes the FFT
in float64) under the monitor's mmap threshold (128 KiB, samos.monitor.heap), so that none costs
freshly mapped pages."""
_HANN = np.hanning(FRAME).astype(np.float32)
_PER_BAND = BAND_HZ * FRAME // SPEC_RATE  # 50 Hz bins per band
BANDS = (FRAME // 2 + 1) // _PER_BAND
"""500 Hz bands of the spectrum, 0 .. 24 kHz."""


@dataclass(frozen=True)
class VadParams:
    """Thresholds of the speech gate and the status (see module doc): ``silence_db`` in dBov,
    ``speech_threshold`` a detector probability, ``min_active`` a fraction of the window's frames.
    Defaults: the monitor's (samos.monitor.config.WindowConfig, chosen with ``samos bench vad``)."""

    silence_db: float = -60.0
    speech_threshold: float = 0.4
    min_active: float = 0.1


def _db(power: np.ndarray | float) -> np.ndarray:
    return np.asarray(10.0 * np.log10(np.maximum(power, _TINY)))


def frame_powers(wave48: np.ndarray) -> np.ndarray:
    """Mean power of each whole 20 ms frame, ``[frames]`` (a partial last frame is ignored)."""
    n = len(wave48) // FRAME
    if n == 0:
        return np.array([np.mean(np.square(wave48, dtype=np.float64))]) if len(wave48) else np.zeros(0)
    frames = wave48[: n * FRAME].reshape(n, FRAME)
    # float32 sums of 960 squares (relative error ~1e-6), then float64: ``dtype=float64`` here would
    # first cast the whole window to a float64 copy
    return np.einsum("ij,ij->i", frames, frames).astype(np.float64) / FRAME


def speech_mask(speech: np.ndarray, offset: int, n_frames: int) -> np.ndarray:
    """Which 20 ms frames (``[n_frames]`` bool) lie in speech: each takes the detector frame holding
    its centre. ``speech``: bool ``[k]`` per detector frame (512 samples at 16 kHz); ``offset``: 16 kHz
    samples from the window's start to the first detector frame."""
    per20 = FRAME // RATE_RATIO  # 20 ms at 16 kHz
    centre = np.arange(n_frames) * per20 + per20 // 2 - offset
    k = np.floor_divide(centre, VAD_FRAME)
    ok = (centre >= 0) & (k < len(speech))
    out = np.zeros(n_frames, bool)
    out[ok] = speech[k[ok]]
    return out


def band_powers(frames: np.ndarray) -> np.ndarray:
    """Power of each 500 Hz band of each 20 ms frame (Hann window), float64 ``[k, BANDS]`` from
    frames float32 ``[k, FRAME]``; taken :data:`SPECTRUM_BLOCK` frames at a time."""
    out = np.empty((len(frames), BANDS))
    for b in range(0, len(frames), SPECTRUM_BLOCK):
        spec = np.fft.rfft(frames[b : b + SPECTRUM_BLOCK] * _HANN, axis=1)
        power = spec.real**2 + spec.imag**2  # bins of 50 Hz, 0 .. 24 kHz
        out[b : b + SPECTRUM_BLOCK] = power[:, : BANDS * _PER_BAND].reshape(-1, BANDS, _PER_BAND).sum(axis=2)
    return out


def spectrum_frames(idx: np.ndarray, first: int = 0) -> np.ndarray:
    """The frames (of ``idx``, window-relative, ascending) whose spectra the bandwidth averages: all of
    them up to :data:`MAX_SPECTRUM_FRAMES`, else those on every ``s``-th frame of the stream's 20 ms
    grid (``first``: the stream's index of the window's first frame), ``s`` the smallest power of two
    that leaves at most that many. On the stream's grid, and with strides that are multiples of one
    another, windows that overlap pick the same frames, so a stream's :class:`FrameStats` measures
    each spectrum once."""
    if len(idx) <= MAX_SPECTRUM_FRAMES:
        return idx
    stride = 2
    while True:
        picked = idx[(idx + first) % stride == 0]
        if not len(picked):  # speech only off the grid's multiples (rare): an even subset instead
            return idx[np.linspace(0, len(idx) - 1, MAX_SPECTRUM_FRAMES).astype(int)]
        if len(picked) <= MAX_SPECTRUM_FRAMES:
            return picked
        stride *= 2


def bandwidth_of(bands: np.ndarray) -> tuple[float, str]:
    """Bandwidth (Hz) and class from the band powers ``[k, BANDS]`` of the frames it averages."""
    if not len(bands):
        return 0.0, "nb"
    levels = _db(bands.sum(axis=0) / len(bands))
    ref = float(levels[: 4_000 // BAND_HZ].max())
    if ref <= float(_db(0.0)) + 1.0:
        return 0.0, "nb"
    above = np.nonzero(levels >= ref - BANDWIDTH_DROP_DB)[0]
    edge = float((above[-1] + 1) * BAND_HZ)
    band = next(name for limit, name in BAND_CLASSES if edge <= limit)
    return edge, band


def _spectrum_candidates(n: int, mask: np.ndarray | None) -> np.ndarray:
    """The frames the bandwidth may average: those in speech, or all when there is no speech."""
    return np.flatnonzero(mask) if mask is not None and mask.size == n and mask.any() else np.arange(n)


def bandwidth(wave48: np.ndarray, mask: np.ndarray | None = None, first: int = 0) -> tuple[float, str]:
    """Effective audio bandwidth (Hz) and its class from the 48 kHz spectrum (see module doc).
    ``first``: the stream's index of the window's first 20 ms frame (see :func:`spectrum_frames`)."""
    n = len(wave48) // FRAME
    if n == 0:
        return 0.0, "nb"
    frames = wave48[: n * FRAME].reshape(n, FRAME)
    idx = spectrum_frames(_spectrum_candidates(n, mask), first)
    return bandwidth_of(band_powers(frames[idx]))


class FrameStats:
    """One stream's 20 ms frame statistics, each frame measured once for every window it lies in.

    Windows of a stream overlap (a 4 s window at a 1 s hop holds each frame four times); a frame's
    power, clipped samples and band powers do not depend on the window. ``window(wave48, start)``
    gives them for a window whose first 48 kHz sample ``start`` (from the stream's start) lies on the
    stream's 20 ms grid, measuring only the frames not measured yet (band powers only for the frames
    the bandwidth asks for); frames before the window are forgotten. Windows are asked for in order.
    The figures are those :func:`analyse` computes without it, bit for bit.
    """

    def __init__(self) -> None:
        self._first = 0  # stream index of the first kept frame
        self._power = np.zeros(0)  # float64 [k]: mean square of each kept frame
        self._clipped = np.zeros(0, np.int64)  # [k]: samples at or above CLIP_LEVEL in magnitude
        self._bands = np.zeros((0, BANDS))  # float64 [k, BANDS]; rows not measured yet: NaN

    def window(self, wave48: np.ndarray, start: int) -> _WindowFrames | None:
        """The window's frames (None when the window is off the grid, holds a partial frame, or
        starts before the frames kept: then :func:`analyse` measures it itself)."""
        n = len(wave48) // FRAME
        if start % FRAME or len(wave48) % FRAME or n == 0:
            return None
        a = start // FRAME
        if a < self._first:
            return None
        have = self._first + len(self._power)
        if a > have:  # nothing kept overlaps it
            self._first, have = a, a
            self._power, self._clipped, self._bands = self._power[:0], self._clipped[:0], self._bands[:0]
        keep = slice(a - self._first, None)
        new = wave48[(have - a) * FRAME :]
        self._power = np.concatenate([self._power[keep], frame_powers(new)])
        new = new.reshape(-1, FRAME)
        self._clipped = np.concatenate([self._clipped[keep], _clipped(new)])
        fresh = np.full((len(new), BANDS), np.nan)
        self._bands = np.concatenate([self._bands[keep], fresh])
        self._first = a
        return _WindowFrames(self, wave48)


@dataclass(frozen=True)
class _WindowFrames:
    """One window's view of its stream's :class:`FrameStats` (valid until the next window)."""

    stats: FrameStats
    wave48: np.ndarray

    @property
    def powers(self) -> np.ndarray:
        return self.stats._power[: len(self.wave48) // FRAME]

    @property
    def clipped(self) -> int:
        return int(self.stats._clipped[: len(self.wave48) // FRAME].sum())

    def bands(self, idx: np.ndarray) -> np.ndarray:
        """Band powers of the window's frames ``idx`` (measured now where not measured yet)."""
        rows = self.stats._bands
        todo = idx[np.isnan(rows[idx, 0])]
        if len(todo):
            frames = self.wave48.reshape(-1, FRAME)
            rows[todo] = band_powers(frames[todo])
        return rows[idx]


def _clipped(x: np.ndarray) -> np.ndarray:
    """Samples at or above :data:`CLIP_LEVEL` in magnitude along the last axis: of each frame of
    ``[k, FRAME]`` (-> ``[k]``), or of a whole window ``[n]`` (-> a 0-d count)."""
    if not x.size or max(float(x.max()), -float(x.min())) < CLIP_LEVEL:
        return np.zeros(x.shape[:-1], np.int64)
    return np.asarray(np.count_nonzero(np.abs(x) >= CLIP_LEVEL, axis=-1), np.int64)


def analyse(
    wave48: np.ndarray,
    rate: int,
    dropped_seconds: float,
    p: VadParams,
    speech_probs: np.ndarray,
    offset: int = 0,
    stats: FrameStats | None = None,
    start: int = 0,
) -> tuple[str, dict[str, Any]]:
    """Status and diagnostics of one window. ``wave48``: float32 ``[3T]`` at 48 kHz; ``rate``: the
    source's native rate (Hz); ``dropped_seconds``: audio lost since the previous window;
    ``speech_probs``: float ``[k]``, the detector's probabilities of the frames wholly inside the
    window, the first starting ``offset`` 16 kHz samples after the window's start. ``start``: the
    window's first 48 kHz sample from the stream's start; ``stats``: the stream's
    :class:`FrameStats`, which measures each frame once for all the windows it lies in (the
    figures are the same with or without it)."""
    n = len(wave48) // FRAME
    frames = stats.window(wave48, start) if stats is not None else None
    powers = frames.powers if frames is not None else frame_powers(wave48)
    speech = np.asarray(speech_probs) >= p.speech_threshold
    mask = speech_mask(speech, offset, n)
    level = float(_db(np.mean(powers))) if powers.size else float("-inf")
    active_ratio = float(speech.mean()) if speech.size else 0.0
    active_level = float(_db(np.mean(powers[: mask.size][mask]))) if mask.any() else None
    clipped = frames.clipped if frames is not None else int(_clipped(wave48))
    clipping = clipped / len(wave48) if len(wave48) else 0.0
    first = start // FRAME if start % FRAME == 0 else 0
    if frames is not None:
        bw, band = bandwidth_of(frames.bands(spectrum_frames(_spectrum_candidates(n, mask), first)))
    else:
        bw, band = bandwidth(wave48, mask, first)
    if level < p.silence_db:
        status = "silence"
    elif active_ratio < p.min_active or not speech.size:
        status = "no_speech"
    else:
        status = "ok"
    diag: dict[str, Any] = {
        "level_db": round(level, 2),
        "active_level_db": round(active_level, 2) if active_level is not None else float("nan"),
        "active_ratio": round(active_ratio, 3),
        "clipping": round(clipping, 5),
        "bandwidth_hz": bw,
        "band": band,
        "rate": int(rate),
        "dropped_seconds": round(dropped_seconds, 4),
        "silence": status == "silence",
    }
    return status, diag
