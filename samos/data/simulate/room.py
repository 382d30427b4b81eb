"""Rooms from pyroomacoustics: a shoebox room of random size, absorption set for a target RT60 by
Sabine's formula, a talker and a microphone at random places. The direct sound and the early
reflections (the first 50 ms after the direct sound) come from pyroomacoustics' image-source method
(order 10, with air absorption); the late tail is exponentially decaying Gaussian noise at that
RT60, matched in level to the image-source response where they meet (a standard hybrid).
pyroomacoustics' own ray tracer is not used for the tail: it draws from an unseeded C++ generator,
so a clip would no longer depend only on (seed, index).

Needs the ``data`` extra (``pip install 'samos[data]'``); :func:`available` says whether it is there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ISM_ORDER = 10
MIXING_S = 0.05
"""The tail takes over this long after the direct sound."""
CROSSFADE_S = 0.01


def available() -> bool:
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Room:
    """A simulated room: its impulse response ``rir`` (float32 ``(taps,)`` at ``rate``, peak-normalised
    direct path), the RT60 asked for and the talker-microphone distance (m)."""

    rir: np.ndarray
    rt60_s: float
    distance_m: float
    dims_m: tuple[float, float, float]


def _inside(rng: np.random.Generator, dims: np.ndarray, margin: float = 0.5) -> np.ndarray:
    return rng.uniform(margin, dims - margin)


def simulate_room(
    rate: int, rt60_s: float, distance_m: tuple[float, float], rng: np.random.Generator
) -> Room:
    """Draw a room (floor 3x3 to 10x8 m, height 2.4-3.5 m) with RT60 ``rt60_s`` and a talker at a
    distance drawn from ``distance_m`` (min, max) of the microphone; return its impulse response."""
    try:
        import pyroomacoustics as pra
    except ImportError as e:
        raise RuntimeError("rooms need pyroomacoustics (pip install 'samos[data]')") from e
    dims = np.array([rng.uniform(3.0, 10.0), rng.uniform(3.0, 8.0), rng.uniform(2.4, 3.5)])
    try:
        absorption, _ = pra.inverse_sabine(rt60_s, dims)
    except ValueError:  # too reverberant for Sabine in so small a room: the most reverberant it allows
        absorption = 0.02
    mic = _inside(rng, dims)
    src = mic
    for _ in range(100):
        direction = rng.standard_normal(3)
        direction[2] *= 0.2  # mostly at mouth height
        d = float(rng.uniform(*distance_m))
        cand = mic + d * direction / np.linalg.norm(direction)
        if np.all(cand > 0.3) and np.all(cand < dims - 0.3):
            src = cand
            break
    else:  # a small room: any place inside
        src = _inside(rng, dims, 0.3)
    room = pra.ShoeBox(
        dims, fs=rate, materials=pra.Material(float(absorption)), max_order=ISM_ORDER, air_absorption=True
    )
    room.add_source(src.tolist())
    room.add_microphone(mic.tolist())
    room.compute_rir()
    early = np.asarray(room.rir[0][0], dtype=np.float64)
    direct = int(np.argmax(np.abs(early)))
    mix = direct + int(MIXING_S * rate)
    fade = int(CROSSFADE_S * rate)
    n = max(len(early), mix + int(rt60_s * rate))
    rir = np.zeros(n)
    rir[: len(early)] = early
    t = np.arange(n - mix + fade) / rate
    tail = rng.standard_normal(len(t)) * np.exp(-6.9078 * t / rt60_s)
    ref = early[mix - fade : mix] if len(early) >= mix else early[-fade:]
    ref_rms = np.sqrt(np.mean(ref * ref) + 1e-20)
    tail *= ref_rms / np.sqrt(np.mean(tail[:fade] ** 2) + 1e-20)
    ramp = np.linspace(0.0, 1.0, fade)
    rir[mix - fade : mix] = rir[mix - fade : mix] * (1 - ramp) + tail[:fade] * ramp
    rir[mix:] = tail[fade:]
    rir /= np.abs(rir).max() + 1e-12
    return Room(rir.astype(np.float32), rt60_s, float(np.linalg.norm(src - mic)), tuple(dims.tolist()))
