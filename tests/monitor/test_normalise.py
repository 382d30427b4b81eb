from __future__ import annotations

import numpy as np
import pytest
from fake_source import split

from samos.audio import resample
from samos.monitor.normalise import Normaliser
from samos.monitor.source import AudioChunk


def run(audio: np.ndarray, rate: int, sizes: list[int] | int) -> tuple[np.ndarray, np.ndarray]:
    n = Normaliser(rate)
    segs = [n.push(AudioChunk(p, rate)) for p in split(audio, sizes)] + [n.flush()]
    for s in segs:
        assert len(s.wave48) == 3 * len(s.wave16)
    return np.concatenate([s.wave16 for s in segs]), np.concatenate([s.wave48 for s in segs])


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000])
def test_chunked_equals_one_shot(rate: int) -> None:
    rng = np.random.default_rng(rate)
    audio = (rng.standard_normal(rate * 2) * 0.1).astype(np.float32)
    sizes = list(rng.integers(1, 2000, size=400))
    a16, a48 = run(audio, rate, sizes)
    b16, b48 = run(audio, rate, [len(audio)])
    np.testing.assert_array_equal(a16, b16)
    np.testing.assert_array_equal(a48, b48)
    ref16, ref48 = resample(audio, rate, 16_000), resample(audio, rate, 48_000)
    n = len(a16)
    assert abs(n - len(ref16)) <= 1
    np.testing.assert_array_equal(a16, ref16[:n])
    np.testing.assert_array_equal(a48, ref48[: 3 * n])


def test_int16_stereo_is_downmixed_and_scaled() -> None:
    x = np.zeros((4800, 2), dtype=np.int16)
    x[:, 0] = 16384  # 0.5 on the left, silence on the right: mono is 0.25
    w16, w48 = run(x, 48_000, 1000)
    assert abs(float(np.median(w48)) - 0.25) < 1e-3
    assert w16.dtype == np.float32 and w48.dtype == np.float32


def test_non_finite_samples_become_zero_and_are_counted() -> None:
    n = Normaliser(16_000)
    x = np.ones(1600, np.float32) * 0.1
    x[[3, 70]] = [np.nan, np.inf]
    seg = n.push(AudioChunk(x, 16_000))
    assert seg.invalid == 2 and np.isfinite(seg.wave48).all()


def test_rate_change_restarts_resamplers() -> None:
    n = Normaliser(16_000)
    a = n.push(AudioChunk(np.zeros(16_000, np.float32), 16_000))
    b = n.push(AudioChunk(np.zeros(48_000, np.float32), 48_000))
    c = n.flush()
    total = sum(len(s.wave16) for s in (a, b, c))
    assert n.rate == 48_000 and abs(total - 32_000) <= 2


def test_dropped_is_reported_in_seconds() -> None:
    seg = Normaliser(48_000).push(AudioChunk(np.zeros(960, np.float32), 48_000, dropped=4800))
    assert seg.dropped_seconds == pytest.approx(0.1)
