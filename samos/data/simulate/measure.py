"""Signal measurements used by the simulator: active speech level and effective audio bandwidth.

Torch-free. Waveforms are mono float32 ``(samples,)`` in [-1, 1]; levels are in dBov (0 dBov = RMS of
a full-scale square wave, as :func:`samos.audio.dbfs`).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

FRAME_S = 0.02
"""Frame length for activity detection, seconds."""
ACTIVITY_RANGE_DB = 35.0
"""Frames within this many dB of the loud (95th percentile) frames count as active speech."""
FLOOR_DBOV = -70.0
"""Frames below this level are never active."""
BANDWIDTH_DROP_DB = 55.0
"""The effective bandwidth is the highest frequency whose smoothed level is within this many dB of
the speech peak (the 0.1-4 kHz maximum) of the long-term spectrum."""
BANDWIDTH_MIN_HZ = 1_000.0


def _frame_power(audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    n = max(1, int(round(FRAME_S * rate)))
    usable = len(audio) // n * n
    if usable == 0:
        return np.array([float(np.mean(np.square(audio, dtype=np.float64)))]), max(len(audio), 1)
    frames = audio[:usable].astype(np.float64).reshape(-1, n)
    return np.mean(frames * frames, axis=1), n


def frame_power_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """Power of each 20 ms frame, dBov (``(frames,)``)."""
    power, _ = _frame_power(audio, rate)
    return 10.0 * np.log10(power + 1e-20)


def active_mask(audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Per-frame speech activity (bool ``(frames,)``) and the frame length in samples."""
    power, n = _frame_power(audio, rate)
    db = 10.0 * np.log10(power + 1e-20)
    threshold = max(float(np.percentile(db, 95)) - ACTIVITY_RANGE_DB, FLOOR_DBOV)
    return db > threshold, n


def active_level_db(audio: np.ndarray, rate: int) -> float:
    """Active speech level in dBov (a simplified P.56: mean power over active 20 ms frames).

    Returns -inf for digital silence.
    """
    power, _ = _frame_power(audio, rate)
    if not np.any(power > 0):
        return float("-inf")
    mask, _ = active_mask(audio, rate)
    p = float(np.mean(power[mask])) if mask.any() else float(np.mean(power))
    return 10.0 * np.log10(p) if p > 0 else float("-inf")


def normalise_level(audio: np.ndarray, rate: int, target_db: float) -> np.ndarray:
    """Scale ``audio`` so that its active level is ``target_db`` dBov. Silence is returned unchanged."""
    level = active_level_db(audio, rate)
    if not np.isfinite(level):
        return audio.astype(np.float32, copy=True)
    return (audio * 10.0 ** ((target_db - level) / 20.0)).astype(np.float32)


def long_term_spectrum(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum in dB over active frames: (frequencies Hz ``(bins,)``, level dB ``(bins,)``)."""
    nper = 1024 if rate >= 32_000 else 512
    if len(audio) < nper:
        audio = np.pad(audio, (0, nper - len(audio)))
    f, t, spec = signal.stft(
        audio.astype(np.float64), fs=rate, nperseg=nper, noverlap=nper // 2, boundary=None
    )
    power = np.abs(spec) ** 2
    frame_pow = power.mean(axis=0)
    if frame_pow.max() <= 0:
        return f, np.full(f.shape, -200.0)
    frame_db = 10 * np.log10(frame_pow + 1e-30)
    active = frame_db > max(float(np.percentile(frame_db, 95)) - ACTIVITY_RANGE_DB, frame_db.max() - 80)
    mean = power[:, active].mean(axis=1)
    return f, 10.0 * np.log10(mean + 1e-30)


def effective_bandwidth_hz(audio: np.ndarray, rate: int) -> float:
    """Highest frequency (Hz) carrying speech energy: where the smoothed long-term spectrum of the
    active frames last lies within :data:`BANDWIDTH_DROP_DB` of its 0.1-4 kHz peak.

    A steep low-pass at ``fc`` measures close to ``fc``; full-band studio speech measures 18-24 kHz.
    Digital silence returns 0.
    """
    if not np.any(audio):
        return 0.0
    f, db = long_term_spectrum(audio, rate)
    smooth = np.convolve(np.pad(db, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    speech = (f >= 100) & (f <= 4_000)
    peak = float(smooth[speech].max()) if speech.any() else float(smooth.max())
    above = np.nonzero((smooth >= peak - BANDWIDTH_DROP_DB) & (f >= BANDWIDTH_MIN_HZ))[0]
    if above.size == 0:
        return BANDWIDTH_MIN_HZ
    return float(min(f[above[-1]], rate / 2))
