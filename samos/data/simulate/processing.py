"""What the devices and the receiver do to a call: noise suppression, automatic gain control and the
jitter buffer's time-scaling. Pure functions of (audio, parameters); mono float32 ``(samples,)`` in
and out at ``rate`` Hz, same length.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

NS_FRAME_S = 0.02
"""STFT frame of the noise suppressor (20 ms, 50 % overlap, as phone suppressors)."""


# ------------------------------------------------------------------------------ noise suppression
def noise_suppressor(
    audio: np.ndarray, rate: int, oversubtract: float, floor_db: float, noise_quantile: float = 0.1
) -> np.ndarray:
    """Power spectral subtraction, the classic (Boll / Berouti) single-channel suppressor.

    The noise power of each bin is its ``noise_quantile`` quantile over the clip's frames, corrected
    for the bias of a low quantile (a minimum-statistics estimate: speech is absent from most bins
    most of the time). The gain is
    ``sqrt(max(1 - oversubtract * N / |X|^2, 10^(floor_db / 10)))``. A low floor leaves isolated
    spectral peaks of the noise ("musical noise"); a large over-subtraction also eats weak speech
    (over-suppression: thin, muffled, chopped word endings).
    """
    n = int(round(NS_FRAME_S * rate))
    _, _, spec = signal.stft(audio.astype(np.float64), fs=rate, nperseg=n, noverlap=n // 2)
    power = np.abs(spec) ** 2
    # a low quantile of an exponentially distributed bin power is -ln(1 - q) times its mean:
    # divide by that (the bias compensation of minimum-statistics estimators)
    noise = np.quantile(power, noise_quantile, axis=1, keepdims=True) / -np.log1p(-noise_quantile)
    gain = np.sqrt(np.maximum(1.0 - oversubtract * noise / np.maximum(power, 1e-20), 10 ** (floor_db / 10)))
    _, y = signal.istft(spec * gain, fs=rate, nperseg=n, noverlap=n // 2)
    y = np.pad(y, (0, max(0, len(audio) - len(y))))[: len(audio)]
    return y.astype(np.float32)


# ---------------------------------------------------------------------------- automatic gain control
def agc_gain_db(
    audio: np.ndarray,
    rate: int,
    target_db: float,
    max_gain_db: float,
    attack_s: float,
    release_s: float,
    frame_s: float = 0.01,
) -> np.ndarray:
    """Per-sample gain (dB, ``(samples,)``) of a feed-forward AGC: the level of each 10 ms frame is
    followed with a fast ``attack_s`` (level rising) and slow ``release_s`` (level falling) time
    constant; the gain brings that level to ``target_db`` dBov, bounded to [-30, ``max_gain_db``]."""
    n = max(1, int(round(frame_s * rate)))
    frames = int(np.ceil(len(audio) / n))
    x = np.pad(audio.astype(np.float64), (0, frames * n - len(audio))).reshape(frames, n)
    level = 10 * np.log10(np.mean(x * x, axis=1) + 1e-12)  # dBov, as measure.active_level_db
    a_up, a_down = np.exp(-frame_s / attack_s), np.exp(-frame_s / release_s)
    env = np.empty(frames)
    e = float(level[0])
    for i, v in enumerate(level.tolist()):
        a = a_up if v > e else a_down
        e = a * e + (1 - a) * v
        env[i] = e
    gain = np.clip(target_db - env, -30.0, max_gain_db)
    centres = (np.arange(frames) + 0.5) * n
    return np.interp(np.arange(len(audio)), centres, gain)


def agc(
    audio: np.ndarray,
    rate: int,
    target_db: float,
    max_gain_db: float,
    attack_s: float,
    release_s: float,
) -> np.ndarray:
    """Apply :func:`agc_gain_db`, saturating at full scale. With background noise and a slow attack
    this "pumps": the gain creeps up in every pause (the noise swells) and speech onsets come out too
    loud until the gain falls back."""
    g = agc_gain_db(audio, rate, target_db, max_gain_db, attack_s, release_s)
    return np.clip(audio * 10 ** (g / 20), -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------- jitter buffer
WSOLA_FRAME_S = 0.02
WSOLA_TOLERANCE_S = 0.006


def time_scale(x: np.ndarray, rate: int, out_len: int) -> np.ndarray:
    """WSOLA time-scaling of ``x`` to ``out_len`` samples, keeping the pitch: 20 ms Hann frames at
    50 % overlap in the output, each taken from around its nominal input position where it best
    continues the previous frame (within +-6 ms), as a jitter buffer's expand/accelerate does."""
    if out_len <= 0:
        return np.zeros(0, np.float32)
    n = max(8, int(round(WSOLA_FRAME_S * rate)) // 2 * 2)
    hop, tol = n // 2, int(round(WSOLA_TOLERANCE_S * rate))
    if len(x) < n + 2 * tol or out_len < n:
        return signal.resample(x, out_len).astype(np.float32) if len(x) > 1 else np.zeros(out_len, np.float32)
    win = np.hanning(n + 2)[1:-1]
    src = np.pad(x.astype(np.float64), (tol, tol + n + hop))
    out = np.zeros(out_len + n)
    norm = np.zeros(out_len + n)
    speed = (len(x) - n) / max(out_len - n, 1)
    prev = tol  # where the previous frame started in src
    for k, o in enumerate(range(0, out_len, hop)):
        nominal = int(round(o * speed)) + tol
        if k == 0:
            pos = nominal
        else:
            natural = src[prev + hop : prev + hop + n]  # what would follow the previous frame
            lo, hi = max(0, nominal - tol), min(len(src) - n, nominal + tol)
            if hi <= lo:
                pos = min(max(nominal, 0), len(src) - n)
            else:
                cand = np.lib.stride_tricks.sliding_window_view(src[lo : hi + n], n)
                pos = lo + int(np.argmax(cand @ natural))
        out[o : o + n] += src[pos : pos + n] * win
        norm[o : o + n] += win
        prev = pos
    return (out[:out_len] / np.maximum(norm[:out_len], 1e-3)).astype(np.float32)


def jitter_stretch(audio: np.ndarray, rate: int, spikes: list[tuple[float, float]]) -> np.ndarray:
    """An adaptive jitter buffer riding out delay spikes. For each ``(time_s, delay_s)`` the buffer
    runs dry at ``time_s``: the next 0.2 s of speech is stretched by ``delay_s`` (expand), then the
    following 1.0 s is compressed by the same amount (accelerate) to return to the old delay. The
    output keeps the input's length; speech between spikes is unchanged but shifted in between."""
    n = len(audio)
    out = audio.astype(np.float32, copy=True)
    for t, d in sorted(spikes):
        a = int(round(t * rate))
        e = int(round(0.2 * rate))
        c = int(round(1.0 * rate))
        dd = int(round(d * rate))
        if a < 0 or a + e + c > n or dd <= 0 or dd >= c // 2:
            continue
        expanded = time_scale(out[a : a + e], rate, e + dd)
        accelerated = time_scale(out[a + e : a + e + c], rate, c - dd)
        seg = np.concatenate([expanded, accelerated])
        fade = min(int(0.005 * rate), len(seg) // 4)
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        seg[:fade] = seg[:fade] * ramp + out[a : a + fade] * (1 - ramp)
        end = a + e + c
        seg[-fade:] = seg[-fade:] * (1 - ramp) + out[end - fade : end] * ramp
        out[a:end] = seg
    return out
