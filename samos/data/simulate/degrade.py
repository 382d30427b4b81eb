"""Call degradations, one function each. Pure functions of (audio, parameters, rng).

Every function takes and returns mono float32 ``(samples,)`` at ``rate`` Hz (the simulator uses
48 kHz) and keeps the length. Levels are dBov, frequencies Hz, durations seconds.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from samos.data.simulate.measure import active_level_db, normalise_level

FRAME_S = 0.02
"""Packet duration of the loss model (20 ms, as RTP voice)."""
TELEPHONE_BAND = (300.0, 3_400.0)


# ------------------------------------------------------------------------------------------- filters
def lowpass(audio: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    """Steep (10th-order elliptic, 90 dB stop band) low-pass at ``cutoff_hz``."""
    sos = signal.ellip(10, 0.1, 90, cutoff_hz, btype="lowpass", fs=rate, output="sos")
    return signal.sosfilt(sos, audio).astype(np.float32)


def highpass(audio: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    """High-pass at ``cutoff_hz`` (small loudspeakers, wind filters): 6th-order elliptic."""
    sos = signal.ellip(6, 0.1, 60, cutoff_hz, btype="highpass", fs=rate, output="sos")
    return signal.sosfilt(sos, audio).astype(np.float32)


def telephone_band(audio: np.ndarray, rate: int) -> np.ndarray:
    """The 300-3400 Hz narrow-band telephone channel."""
    return lowpass(highpass(audio, rate, TELEPHONE_BAND[0]), rate, TELEPHONE_BAND[1])


# --------------------------------------------------------------------------------------------- noise
def coloured_noise(kind: str, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary noise of ``n`` samples: ``white``, ``pink`` (1/f), ``brown`` (1/f^2) or ``hum``
    (mains 50 or 60 Hz with decaying harmonics). Unit RMS."""
    if kind == "hum":
        t = np.arange(n) / rate
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        x = sum((0.7**k) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 12))
        x = np.asarray(x) + 0.01 * rng.standard_normal(n)
    else:
        white = rng.standard_normal(n)
        if kind == "white":
            x = white
        else:
            exponent = {"pink": 0.5, "brown": 1.0}.get(kind)
            if exponent is None:
                raise ValueError(f"unknown noise type {kind!r}")
            spec = np.fft.rfft(white)
            f = np.fft.rfftfreq(n, 1 / rate)
            spec *= 1.0 / np.maximum(f, 20.0) ** exponent
            x = np.fft.irfft(spec, n)
    x = x - x.mean()
    return (x / (np.sqrt(np.mean(x * x)) + 1e-12)).astype(np.float32)


def babble(talkers: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Babble of ``n`` samples: other talkers' utterances, each looped, randomly shifted and summed."""
    if not talkers:
        raise ValueError("babble needs at least one other talker's speech")
    out = np.zeros(n, np.float64)
    for t in talkers:
        looped = np.tile(t, int(np.ceil(n / len(t))) + 1)
        start = int(rng.integers(len(t)))
        out += looped[start : start + n]
    out -= out.mean()
    return (out / (np.sqrt(np.mean(out * out)) + 1e-12)).astype(np.float32)


def add_noise(audio: np.ndarray, rate: int, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Add ``noise`` at ``snr_db`` dB below the ACTIVE speech level (noise power over the whole clip)."""
    level = active_level_db(audio, rate)
    noise_db = 10 * np.log10(np.mean(np.square(noise, dtype=np.float64)) + 1e-20)
    gain = 10 ** ((level - snr_db - noise_db) / 20)
    return (audio + gain * noise[: len(audio)]).astype(np.float32)


# ---------------------------------------------------------------------------------------- room, gain
def synthetic_rir(rate: int, rt60_s: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Room impulse response: a direct impulse plus exponentially decaying noise (-60 dB at ``rt60_s``),
    with ``drr_db`` the direct-to-reverberant energy ratio."""
    n = int(rt60_s * rate)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)
    tail[: int(0.002 * rate)] = 0.0  # first reflections arrive after ~2 ms
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail * tail))
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverb(
    audio: np.ndarray, rate: int, rt60_s: float, drr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """Convolve with a synthetic RIR; the active level is kept."""
    return convolve_keep_level(audio, rate, synthetic_rir(rate, rt60_s, drr_db, rng))


def convolve_keep_level(audio: np.ndarray, rate: int, rir: np.ndarray) -> np.ndarray:
    """Convolve with an impulse response (e.g. a room.simulate_room one); the active level is kept."""
    level = active_level_db(audio, rate)
    wet = signal.fftconvolve(audio, rir)[: len(audio)].astype(np.float32)
    return normalise_level(wet, rate, level) if np.isfinite(level) else wet


def clip(audio: np.ndarray, fraction: float) -> np.ndarray:
    """Hard clipping at ``fraction`` of the clip's peak, then make-up gain back to the original peak
    (an overdriven input stage followed by an AGC)."""
    peak = float(np.abs(audio).max())
    if peak == 0:
        return audio.copy()
    return (np.clip(audio, -fraction * peak, fraction * peak) / fraction).astype(np.float32)


def set_level(audio: np.ndarray, rate: int, level_db: float) -> np.ndarray:
    """Set the active level to ``level_db`` dBov and saturate at full scale (a too loud or quiet talker)."""
    return np.clip(normalise_level(audio, rate, level_db), -1.0, 1.0).astype(np.float32)


def gain_jumps(audio: np.ndarray, rate: int, gains_db: list[float]) -> np.ndarray:
    """Split the clip into ``len(gains_db)`` equal segments with those gains (10 ms ramps between),
    as an AGC pumping or a user moving away from the microphone. Saturates at full scale."""
    n = len(audio)
    env = np.repeat(10 ** (np.asarray(gains_db) / 20), int(np.ceil(n / len(gains_db))))[:n]
    ramp = max(1, int(0.01 * rate))
    env = np.convolve(np.pad(env, ramp, mode="edge"), np.ones(ramp) / ramp, mode="same")[ramp : ramp + n]
    return np.clip(audio * env, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------- packet loss
def loss_pattern(n_frames: int, rate: float, burst: float, rng: np.random.Generator) -> np.ndarray:
    """Lost frames (bool ``(n_frames,)``) from a two-state Gilbert model with mean loss ``rate`` and
    mean burst length ``burst`` frames (1 = independent losses)."""
    p_exit = 1.0 / max(burst, 1.0)
    p_enter = rate * p_exit / max(1e-9, 1.0 - rate)
    lost = np.zeros(n_frames, bool)
    state = rng.random() < rate
    for i in range(n_frames):
        lost[i] = state
        state = (rng.random() >= p_exit) if state else (rng.random() < p_enter)
    return lost


def packet_loss(audio: np.ndarray, rate: int, lost: np.ndarray, concealment: str) -> np.ndarray:
    """Drop the 20 ms frames marked in ``lost``.

    ``concealment``: ``zero`` (silence insertion, no PLC) or ``repeat`` (repeat the last good frame,
    fading by 6 dB per repeated frame, with 2.5 ms cross-fades at every boundary).
    """
    if concealment not in ("zero", "repeat"):
        raise ValueError(f"concealment must be 'zero' or 'repeat', got {concealment!r}")
    n = int(round(FRAME_S * rate))
    out = audio.copy()
    fade = max(1, int(0.0025 * rate))
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    last = np.zeros(n, np.float32)
    run = 0
    for i, is_lost in enumerate(lost):
        a, b = i * n, min((i + 1) * n, len(audio))
        if a >= len(audio):
            break
        if not is_lost:
            last, run = audio[a:b].copy(), 0
            continue
        run += 1
        if concealment == "zero":
            out[a:b] = 0.0
            continue
        seg = last[: b - a] * np.float32(10 ** (-6 * (run - 1) / 20))
        if len(seg) < b - a:
            seg = np.pad(seg, (0, b - a - len(seg)))
        k = min(fade, len(seg))
        seg[:k] *= ramp[:k]
        seg[len(seg) - k :] *= ramp[:k][::-1]
        out[a:b] = seg
    if concealment == "repeat":  # fade the good frames into and out of each concealed stretch
        for i in np.nonzero(np.diff(lost.astype(int)))[0].tolist():
            edge = (i + 1) * n
            if lost[i + 1]:
                lo = max(0, edge - fade)
                out[lo:edge] *= ramp[::-1][: edge - lo]
            else:
                hi = min(len(out), edge + fade)
                out[edge:hi] *= ramp[: hi - edge]
    return out.astype(np.float32)


def gilbert_elliott(
    n_frames: int,
    rate: float,
    burst: float,
    loss_bad: float,
    rng: np.random.Generator,
    loss_good: float = 0.0,
) -> np.ndarray:
    """Lost packets (bool ``(n_frames,)``) from a Gilbert-Elliott channel: a Good and a Bad state with
    mean sojourn in Bad of ``burst`` packets, losing packets with probability ``loss_good`` in Good and
    ``loss_bad`` in Bad; the state probabilities are set so that the mean loss is ``rate``.
    ``loss_bad=1, loss_good=0`` is the simple Gilbert model of :func:`loss_pattern`."""
    if not 0.0 <= loss_good < rate < loss_bad <= 1.0:
        raise ValueError(f"need 0 <= loss_good < rate < loss_bad <= 1, got {loss_good}, {rate}, {loss_bad}")
    p_bg = 1.0 / max(burst, 1.0)
    pi_bad = (rate - loss_good) / (loss_bad - loss_good)
    p_gb = min(1.0, pi_bad * p_bg / max(1e-9, 1.0 - pi_bad))
    u, v = rng.random(n_frames), rng.random(n_frames)
    lost = np.zeros(n_frames, bool)
    bad = rng.random() < pi_bad
    for i in range(n_frames):
        lost[i] = v[i] < (loss_bad if bad else loss_good)
        bad = (u[i] >= p_bg) if bad else (u[i] < p_gb)
    return lost


# ------------------------------------------------------------------------ clipping at other stages
def saturate(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """A gain of ``gain_db`` into a full-scale limit: hard clipping at +-1 with no make-up gain (a
    receiver's volume or a playback DAC driven too hard, after the codec)."""
    return np.clip(audio * np.float32(10 ** (gain_db / 20)), -1.0, 1.0).astype(np.float32)


def soft_clip(audio: np.ndarray, drive_db: float) -> np.ndarray:
    """A small loudspeaker's compressive non-linearity: ``tanh(g x) / g`` with ``g`` set so that the
    clip's peak is driven ``drive_db`` dB into the curve (0 dB: peak at the knee, tanh(1))."""
    peak = float(np.abs(audio).max())
    if peak == 0:
        return audio.astype(np.float32, copy=True)
    g = 10 ** (drive_db / 20) / peak
    return (np.tanh(g * audio) / g).astype(np.float32)


# ------------------------------------------------------------------------ other talkers and echo
def _place(other: np.ndarray, n: int, start: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    if start < n:
        seg = other[: n - start]
        out[start : start + len(seg)] = seg
    return out


def add_talker(audio: np.ndarray, rate: int, other: np.ndarray, sir_db: float, start: int) -> np.ndarray:
    """Add a competing talker ``other`` from sample ``start`` on, at a signal-to-interference ratio of
    ``sir_db`` dB between the two ACTIVE speech levels (P.56-style, as in listening tests)."""
    placed = _place(other, len(audio), start)
    lo, li = active_level_db(audio, rate), active_level_db(placed, rate)
    if not (np.isfinite(lo) and np.isfinite(li)):
        return audio.astype(np.float32, copy=True)
    return (audio + placed * np.float32(10 ** ((lo - li - sir_db) / 20))).astype(np.float32)


def echo(
    audio: np.ndarray,
    rate: int,
    far: np.ndarray,
    delay_s: float,
    echo_loss_db: float,
    path: np.ndarray,
    drive_db: float | None = None,
) -> np.ndarray:
    """Acoustic echo: ``far`` (the far-end talker, or ``audio`` itself for talker echo) played by a
    loudspeaker (``soft_clip`` at ``drive_db`` when given), through the echo path impulse response
    ``path`` (loudspeaker to microphone, in the room), delayed by ``delay_s`` (network, buffers and
    an echo canceller that failed to remove it) and added ``echo_loss_db`` dB below the active level
    of ``audio``."""
    x = soft_clip(far, drive_db) if drive_db is not None else far.astype(np.float32)
    wet = signal.fftconvolve(x, path)[: len(audio)].astype(np.float32)
    placed = _place(wet, len(audio), int(round(delay_s * rate)))
    lo, le = active_level_db(audio, rate), active_level_db(placed, rate)
    if not (np.isfinite(lo) and np.isfinite(le)):
        return audio.astype(np.float32, copy=True)
    return (audio + placed * np.float32(10 ** ((lo - le - echo_loss_db) / 20))).astype(np.float32)
