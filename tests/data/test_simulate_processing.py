"""Noise suppressor, AGC and jitter-buffer time-scaling: each checked on its defining property."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from samos.data.simulate import processing
from samos.data.simulate.measure import active_level_db

RATE = 48_000


def _bursts(seconds: float = 4.0, on: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic 'speech' bursts of ``on`` s every 2 ``on`` s, and the burst mask."""
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * 160 * k * t) / k for k in range(1, 20))
    mask = (t // on) % 2 == 0
    return (0.05 * np.asarray(voiced) * mask).astype(np.float32), mask


def _white(n: int, level: float, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_suppressor_removes_noise_leaves_musical_noise_and_can_over_suppress() -> None:
    speech, mask = _bursts()
    noise = _white(len(speech), 0.005)
    noisy = speech + noise
    mild = processing.noise_suppressor(noisy, RATE, 2.0, -40.0)
    assert mild.shape == noisy.shape and mild.dtype == np.float32
    pause = ~mask
    pause[: RATE // 10] = False

    def rms(x: np.ndarray, m: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x[m].astype(np.float64) ** 2)))

    assert rms(mild, pause) < 0.5 * rms(noisy, pause)  # the noise in the pauses is reduced

    # musical noise: what is left in the pauses is a few isolated spectral peaks, much spikier in
    # time-frequency than the stationary noise it came from (kurtosis of the STFT magnitudes)
    def tf_kurtosis(x: np.ndarray) -> float:
        _, _, z = signal.stft(x[pause], fs=RATE, nperseg=960)
        m = np.abs(z[10:400]).ravel()
        return float(np.mean((m - m.mean()) ** 4) / np.var(m) ** 2)

    assert tf_kurtosis(mild) > 3 * tf_kurtosis(noisy)
    # harder over-subtraction also takes away speech: the weak harmonics (12th-19th, 20-25 dB below
    # the first) vanish with the noise while the strong ones stay (thin, muffled speech)
    seg = slice(int(1.05 * RATE), int(1.45 * RATE))  # inside a burst

    def harmonics_db(y: np.ndarray, ks: range) -> float:
        spec = np.abs(np.fft.rfft(y[seg] * np.hanning(seg.stop - seg.start))) ** 2
        f = np.fft.rfftfreq(seg.stop - seg.start, 1 / RATE)
        return float(10 * np.log10(sum(spec[np.argmin(np.abs(f - 160 * k))] for k in ks)))

    noisier = speech + _white(len(speech), 0.02)
    for over, low, high in ((1.0, -6.0, 0.0), (6.0, -40.0, -15.0)):
        y = processing.noise_suppressor(noisier, RATE, over, -40.0)
        weak = harmonics_db(y, range(12, 20)) - harmonics_db(speech, range(12, 20))
        assert low < weak < high
        assert abs(harmonics_db(y, range(1, 4)) - harmonics_db(speech, range(1, 4))) < 1.0
    # a high floor keeps more of the noise than a low one
    floor = processing.noise_suppressor(noisy, RATE, 2.0, -6.0)
    assert rms(floor, pause) > 1.5 * rms(mild, pause)


def test_agc_reaches_its_target_and_pumps_in_pauses() -> None:
    speech, mask = _bursts(on=1.0)
    quiet_speech = speech * 0.3  # about 10 dB too quiet
    noisy = quiet_speech + _white(len(speech), 0.0003)
    g = processing.agc_gain_db(noisy, RATE, -26.0, 25.0, 0.02, 0.3)
    assert g.shape == noisy.shape
    y = processing.agc(noisy, RATE, -26.0, 25.0, 0.02, 0.3)
    before, after = active_level_db(noisy, RATE), active_level_db(y, RATE)
    assert after > before + 6 and abs(after + 26.0) < abs(before + 26.0) / 2  # brought up towards -26
    # pumping: late in each pause the gain has crept up to its maximum (the noise swells) ...
    late_pause = np.zeros_like(mask)
    for k in (1, 3):
        late_pause[int((k + 0.7) * RATE) : int((k + 1) * RATE)] = True
    speech_steady = np.zeros_like(mask)
    for k in (2,):
        speech_steady[int((k + 0.3) * RATE) : int((k + 1) * RATE)] = True
    assert g[late_pause].mean() == pytest.approx(25.0, abs=0.5)
    assert g[late_pause].mean() > g[speech_steady].mean() + 5
    # ... and the onset after a pause comes out louder than the same speech once the gain settled
    onset = y[2 * RATE : 2 * RATE + RATE // 50].astype(np.float64)
    later = y[2 * RATE + RATE // 2 : 2 * RATE + RATE // 2 + RATE // 50].astype(np.float64)
    assert np.sqrt(np.mean(onset**2)) > 1.5 * np.sqrt(np.mean(later**2))


def test_time_scale_keeps_pitch_and_level() -> None:
    t = np.arange(RATE) / RATE
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for factor in (0.8, 1.3):
        y = processing.time_scale(x, RATE, int(factor * RATE))
        assert len(y) == int(factor * RATE)
        f = np.fft.rfftfreq(len(y), 1 / RATE)
        assert f[np.argmax(np.abs(np.fft.rfft(y)))] == pytest.approx(220.0, abs=2.0)  # pitch kept
        core = y[RATE // 20 : -RATE // 20].astype(np.float64)
        assert np.sqrt(np.mean(core**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


def test_jitter_stretch_delays_then_catches_up() -> None:
    rng = np.random.default_rng(3)
    envelope = np.repeat(rng.uniform(0.1, 1.0, 4 * RATE // 2400 + 1), 2400)[: 4 * RATE]  # not periodic
    x = (0.05 * rng.standard_normal(4 * RATE) * envelope).astype(np.float32)
    y = processing.jitter_stretch(x, RATE, [(0.5, 0.08)])
    assert y.shape == x.shape
    assert np.array_equal(y[: int(0.49 * RATE)], x[: int(0.49 * RATE)])  # untouched before the spike
    assert np.array_equal(y[int(1.71 * RATE) :], x[int(1.71 * RATE) :])  # and after the catch-up

    def lag_ms(a: float, b: float) -> float:
        seg = y[int(a * RATE) : int(b * RATE)].astype(np.float64)
        lags = range(int(0.15 * RATE))
        c = [np.dot(seg, x[int(a * RATE) - k : int(b * RATE) - k]) for k in lags]
        return 1000 * int(np.argmax(c)) / RATE

    # the lag grows while the buffer expands (0.5-0.78 s: 0.2 s of input played in 0.28 s) up to the
    # spike's 80 ms, then shrinks while it accelerates back (to 1.71 s)
    starts = np.arange(0.5, 1.6, 0.02)
    lags = [lag_ms(a, a + 0.04) for a in starts]
    peak = int(np.argmax(lags))
    assert lags[peak] == pytest.approx(80.0, abs=8.0)
    assert starts[peak] == pytest.approx(0.76, abs=0.06)
    assert lags[-1] < 20.0
