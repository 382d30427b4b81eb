"""Active level and effective bandwidth measurements."""

from __future__ import annotations

import numpy as np
import pytest

from samos.data.simulate import degrade
from samos.data.simulate.measure import active_level_db, effective_bandwidth_hz, normalise_level

RATE = 48_000


def _bursts(seed: int = 0) -> np.ndarray:
    """Speech-like test signal: pink-noise bursts separated by silence (half active)."""
    rng = np.random.default_rng(seed)
    x = degrade.coloured_noise("pink", 4 * RATE, RATE, rng) * 0.05
    env = (np.arange(4 * RATE) // (RATE // 2)) % 2 == 0
    return (x * env).astype(np.float32)


def test_active_level_ignores_pauses_and_normalise_hits_target() -> None:
    x = _bursts()
    active = x[: RATE // 2]
    expected = 10 * np.log10(np.mean(active.astype(np.float64) ** 2))
    assert active_level_db(x, RATE) == pytest.approx(expected, abs=0.5)
    y = normalise_level(x, RATE, -26.0)
    assert active_level_db(y, RATE) == pytest.approx(-26.0, abs=0.01)
    assert active_level_db(np.zeros(RATE, np.float32), RATE) == float("-inf")


@pytest.mark.parametrize("cutoff", [4000, 8000, 12000, 16000])
def test_bandwidth_follows_a_low_pass(cutoff: int) -> None:
    y = degrade.lowpass(_bursts(), RATE, cutoff)
    assert effective_bandwidth_hz(y, RATE) == pytest.approx(cutoff, rel=0.12)


def test_bandwidth_of_full_band_and_silence() -> None:
    assert effective_bandwidth_hz(_bursts(), RATE) > 20_000
    assert effective_bandwidth_hz(np.zeros(RATE, np.float32), RATE) == 0.0
