"""Helpers shared by the monitor tests (a uniquely named module: ``from conftest import`` is ambiguous
when several test folders each have a conftest.py): a tiny, hand-built samos ONNX model and
speech-like test signals."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

import samos
from samos.audio import load_audio, resample
from samos.bench.level_model import make_level_model  # noqa: F401 - re-exported for the tests

DEMO_CALL = Path(samos.__file__).resolve().parent / "assets" / "demo_call_48k.flac"


def level_mos(wave48: np.ndarray) -> float:
    """numpy twin of make_level_model's MOS for one window."""
    return float(1 + 4 / (1 + np.exp(-40 * (0.05 - np.mean(np.abs(wave48.astype(np.float64)))))))


@functools.lru_cache(maxsize=1)
def _demo_call() -> np.ndarray:
    """The bundled demo call (real P.835 talkers, 48 kHz mono, about 40 s) with every pause cut to
    at most 0.16 s (pauses found by the speech detector), so that any window of 1 s holds speech."""
    from samos.runtime.vad import FRAME, speech_prob

    x, rate = load_audio(DEMO_CALL)
    assert rate == 48_000
    talk = speech_prob(resample(x, rate, 16_000)) >= 0.5
    keep, pause = [], 0
    for k, t in enumerate(talk):  # 32 ms frames; 96 ms of each pause is kept, 5 frames = 0.16 s
        pause = 0 if t else pause + 1
        if pause <= 5:
            keep.append(k)
    step = 3 * FRAME  # one 16 kHz frame is 1536 samples at 48 kHz
    return np.concatenate([x[k * step : (k + 1) * step] for k in keep]).astype(np.float32)


def speech_like(
    seconds: float, rate: int, level: float = 0.1, seed: int = 0, noise: float = 0.0
) -> np.ndarray:
    """Real speech: ``seconds`` of the bundled demo call (P.835 talkers, looped, from a ``seed``-drawn
    offset) at ``rate`` Hz, plus optional steady white noise.

    float32 ``[n]``; ``level`` is the speech level while talking (its RMS over the whole excerpt,
    pauses included, is ``0.7 * level``); ``noise`` the RMS of the white background.
    """
    rng = np.random.default_rng(seed)
    call = _demo_call()
    n48 = int(round(seconds * 48_000))
    start = int(rng.integers(0, len(call)))
    x = np.resize(np.roll(call, -start), n48)
    x = resample(x, 48_000, rate) if rate != 48_000 else x
    x = x[: int(seconds * rate)].astype(np.float64)
    x *= 0.7 * level / max(float(np.sqrt(np.mean(np.square(x)))), 1e-9)
    x += rng.standard_normal(len(x)) * noise
    return x.astype(np.float32)
