"""pyroomacoustics rooms: RT60 of the impulse response, seeded, the talker where asked."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyroomacoustics")

from samos.data.simulate.room import simulate_room  # noqa: E402

RATE = 48_000


def _t30(rir: np.ndarray) -> float:
    """RT60 from the Schroeder decay between -5 and -35 dB."""
    energy = np.cumsum(rir[::-1].astype(np.float64) ** 2)[::-1]
    edc = 10 * np.log10(energy / energy[0])
    return float((np.argmax(edc < -35) - np.argmax(edc < -5)) / RATE * 2)


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_room_decays_at_its_rt60_and_is_seeded(rt60: float) -> None:
    room = simulate_room(RATE, rt60, (1.0, 1.0), np.random.default_rng(2))
    assert _t30(room.rir) == pytest.approx(rt60, rel=0.15)
    again = simulate_room(RATE, rt60, (1.0, 1.0), np.random.default_rng(2))
    assert np.array_equal(room.rir, again.rir)  # a clip depends only on its seed
    assert room.distance_m == pytest.approx(1.0, abs=1e-6)
    assert room.rir.dtype == np.float32 and np.abs(room.rir).max() == pytest.approx(1.0)
    # the direct sound arrives after the talker-microphone distance at the speed of sound
    assert int(np.argmax(np.abs(room.rir))) / RATE == pytest.approx(1.0 / 343.0, abs=0.0015)


def test_far_talker_has_more_reverberant_energy() -> None:
    def drr(d: float) -> float:
        rir = simulate_room(RATE, 0.6, (d, d), np.random.default_rng(4)).rir.astype(np.float64)
        k = int(np.argmax(np.abs(rir))) + int(0.0025 * RATE)
        return float(10 * np.log10(np.sum(rir[:k] ** 2) / np.sum(rir[k:] ** 2)))

    assert drr(0.3) > drr(2.5) + 6
