"""Helpers shared by the monitor tests (a uniquely named module: ``from conftest import`` is ambiguous
when several test folders each have a conftest.py): a tiny, hand-built samos ONNX model and
speech-like test signals."""

from __future__ import annotations

import numpy as np

from samos.bench.level_model import make_level_model  # noqa: F401 - re-exported for the tests


def level_mos(wave48: np.ndarray) -> float:
    """numpy twin of make_level_model's MOS for one window."""
    return float(1 + 4 / (1 + np.exp(-40 * (0.05 - np.mean(np.abs(wave48.astype(np.float64)))))))


def speech_like(
    seconds: float, rate: int, level: float = 0.1, seed: int = 0, noise: float = 0.0
) -> np.ndarray:
    """Syllable-like bursts: noise through a 4 Hz on/off envelope with pauses, plus optional steady noise.

    float32 ``[n]``; ``level`` is the burst RMS, ``noise`` the RMS of a steady background.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2 * (np.sin(2 * np.pi * 0.3 * t + seed) > -0.9)
    x = rng.standard_normal(n) * env * level * 1.6 + rng.standard_normal(n) * noise
    return x.astype(np.float32)
