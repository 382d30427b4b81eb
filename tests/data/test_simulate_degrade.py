"""One test group per degradation function."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from samos.data.simulate import degrade
from samos.data.simulate.measure import active_level_db, effective_bandwidth_hz

RATE = 48_000


@pytest.fixture
def speechlike() -> np.ndarray:
    rng = np.random.default_rng(1)
    x = degrade.coloured_noise("pink", 3 * RATE, RATE, rng) * 0.05
    env = (np.arange(3 * RATE) // (RATE // 4)) % 2 == 0
    return (x * env).astype(np.float32)


def test_filters_keep_length_and_limit_band(speechlike: np.ndarray) -> None:
    for y in (
        degrade.lowpass(speechlike, RATE, 4000),
        degrade.telephone_band(speechlike, RATE),
        degrade.highpass(speechlike, RATE, 300),
    ):
        assert y.shape == speechlike.shape and y.dtype == np.float32
    assert effective_bandwidth_hz(degrade.telephone_band(speechlike, RATE), RATE) < 4000
    spec = np.abs(np.fft.rfft(degrade.highpass(speechlike, RATE, 400)))
    f = np.fft.rfftfreq(len(speechlike), 1 / RATE)
    assert spec[f < 150].mean() < 0.05 * spec[(f > 1000) & (f < 2000)].mean()


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "hum"])
def test_coloured_noise_unit_rms_and_colour(kind: str) -> None:
    x = degrade.coloured_noise(kind, RATE, RATE, np.random.default_rng(0))
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(RATE, 1 / RATE)
    low, high = spec[(f > 100) & (f < 400)].mean(), spec[(f > 4000) & (f < 8000)].mean()
    ratio = {"white": (0.5, 2), "pink": (5, 200), "brown": (200, 1e9), "hum": (1e3, 1e12)}[kind]
    assert ratio[0] < low / high < ratio[1]
    with pytest.raises(ValueError):
        degrade.coloured_noise("purple", 100, RATE, np.random.default_rng(0))


def test_add_noise_hits_the_snr(speechlike: np.ndarray) -> None:
    noise = degrade.coloured_noise("white", len(speechlike), RATE, np.random.default_rng(2))
    y = degrade.add_noise(speechlike, RATE, noise, 10.0)
    added = (y - speechlike).astype(np.float64)
    snr = active_level_db(speechlike, RATE) - 10 * np.log10(np.mean(added**2))
    assert snr == pytest.approx(10.0, abs=0.1)


def test_babble_sums_other_talkers() -> None:
    rng = np.random.default_rng(3)
    talkers = [rng.standard_normal(RATE // 2).astype(np.float32) for _ in range(3)]
    b = degrade.babble(talkers, RATE, rng)
    assert b.shape == (RATE,) and np.sqrt(np.mean(b.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ValueError):
        degrade.babble([], RATE, rng)


def test_reverb_decays_at_rt60_and_keeps_level(speechlike: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    rir = degrade.synthetic_rir(RATE, 0.6, 0.0, rng)
    energy = np.cumsum(rir[::-1].astype(np.float64) ** 2)[::-1]  # Schroeder integral
    edc = 10 * np.log10(energy / energy[0])
    t30 = (np.argmax(edc < -35) - np.argmax(edc < -5)) / RATE * 2  # T30 extrapolated to 60 dB
    assert t30 == pytest.approx(0.6, rel=0.15)
    y = degrade.reverb(speechlike, RATE, 0.6, 0.0, rng)
    assert y.shape == speechlike.shape
    assert active_level_db(y, RATE) == pytest.approx(active_level_db(speechlike, RATE), abs=0.01)


def test_clip_flattens_peaks_keeps_peak_level(speechlike: np.ndarray) -> None:
    y = degrade.clip(speechlike, 0.3)
    peak = np.abs(speechlike).max()
    assert np.abs(y).max() == pytest.approx(peak, rel=1e-5)
    assert np.mean(np.isclose(np.abs(y), peak, rtol=1e-5)) > 0.01  # many samples sit at the ceiling


def test_levels_and_gain_jumps(speechlike: np.ndarray) -> None:
    assert active_level_db(degrade.set_level(speechlike, RATE, -45.0), RATE) == pytest.approx(-45.0, abs=0.01)
    loud = degrade.set_level(speechlike, RATE, -3.0)
    assert np.abs(loud).max() <= 1.0
    y = degrade.gain_jumps(speechlike, RATE, [0.0, -20.0])
    half = len(y) // 2
    assert np.allclose(y[: half - RATE // 50], speechlike[: half - RATE // 50])
    assert np.abs(y[half + RATE // 50 :]).max() == pytest.approx(
        0.1 * np.abs(speechlike[half + RATE // 50 :]).max(), rel=1e-3
    )


def test_loss_pattern_rate_and_burstiness() -> None:
    rng = np.random.default_rng(5)
    lost = degrade.loss_pattern(20000, 0.1, 3.0, rng)
    assert lost.mean() == pytest.approx(0.1, abs=0.02)
    starts = np.sum(np.diff(lost.astype(int)) == 1)
    assert lost.sum() / starts == pytest.approx(3.0, rel=0.2)


def test_packet_loss_zero_and_repeat(speechlike: np.ndarray) -> None:
    n = int(degrade.FRAME_S * RATE)
    frames = len(speechlike) // n
    lost = np.zeros(frames, bool)
    lost[[3, 4, 10]] = True
    zero = degrade.packet_loss(speechlike, RATE, lost, "zero")
    assert not zero[3 * n : 5 * n].any() and np.array_equal(zero[: 3 * n], speechlike[: 3 * n])
    rep = degrade.packet_loss(speechlike, RATE, lost, "repeat")
    mid = slice(3 * n + n // 4, 4 * n - n // 4)  # away from the cross-fades
    assert np.allclose(rep[mid], speechlike[2 * n : 3 * n][n // 4 : n - n // 4])
    assert np.allclose(
        rep[4 * n + n // 4 : 5 * n - n // 4], 0.5 * speechlike[2 * n + n // 4 : 3 * n - n // 4], rtol=0.01
    )
    with pytest.raises(ValueError):
        degrade.packet_loss(speechlike, RATE, lost, "magic")


def test_gilbert_elliott_rate_bursts_and_good_state_losses() -> None:
    rng = np.random.default_rng(6)
    lost = degrade.gilbert_elliott(40_000, 0.1, 4.0, 1.0, rng)
    assert lost.mean() == pytest.approx(0.1, abs=0.015)
    runs = lost.sum() / max(1, np.sum(np.diff(lost.astype(int)) == 1))
    assert runs == pytest.approx(4.0, rel=0.2)  # loss_bad = 1: every Bad sojourn is one loss burst
    random = rng.random(40_000) < 0.1
    assert runs > 2 * random.sum() / np.sum(np.diff(random.astype(int)) == 1)  # burstier than random
    mixed = degrade.gilbert_elliott(40_000, 0.1, 4.0, 0.6, rng, loss_good=0.02)
    assert mixed.mean() == pytest.approx(0.1, abs=0.015)
    with pytest.raises(ValueError):
        degrade.gilbert_elliott(10, 0.5, 2.0, 0.4, rng)


def test_saturate_clips_at_full_scale_and_soft_clip_compresses(speechlike: np.ndarray) -> None:
    loud = degrade.saturate(speechlike, 30.0)
    assert np.abs(loud).max() == pytest.approx(1.0)
    assert np.mean(np.abs(loud) >= 1.0) > 0.01  # clipped samples sit at full scale, no make-up gain
    small = np.abs(speechlike) * 10**1.5 < 0.5
    assert np.allclose(loud[small], speechlike[small] * 10**1.5, rtol=1e-5)  # linear below the limit
    soft = degrade.soft_clip(speechlike, 12.0)
    assert np.all(np.diff(soft[np.argsort(speechlike)]) >= -1e-7)  # monotonic
    peak = np.abs(speechlike).max()
    assert np.abs(soft).max() < 0.5 * peak  # the peak is compressed ...
    tiny = np.abs(speechlike) < 0.02 * peak
    assert np.allclose(soft[tiny], speechlike[tiny], rtol=0.01, atol=1e-6)  # ... small samples are not


def test_competing_talker_at_its_sir(speechlike: np.ndarray) -> None:
    other = np.roll(speechlike, 12345) * 3.0
    y = degrade.add_talker(speechlike, RATE, other, 6.0, RATE // 2)
    added = (y - speechlike).astype(np.float32)
    assert not added[: RATE // 2].any()  # the other talker starts where asked
    sir = active_level_db(speechlike, RATE) - active_level_db(added, RATE)
    assert sir == pytest.approx(6.0, abs=0.05)


@pytest.mark.parametrize("delay_s", [0.03, 0.12, 0.3])
def test_echo_delay_by_cross_correlation_and_its_loss(speechlike: np.ndarray, delay_s: float) -> None:
    rng = np.random.default_rng(7)
    far = degrade.coloured_noise("white", len(speechlike), RATE, rng) * 0.05
    path = degrade.synthetic_rir(RATE, 0.2, 6.0, rng)
    y = degrade.echo(speechlike, RATE, far, delay_s, 15.0, path, drive_db=6.0)
    e = (y - speechlike).astype(np.float64)
    corr = signal.correlate(e, far, mode="full", method="fft")[len(far) - 1 :]
    assert int(np.argmax(np.abs(corr[: int(0.5 * RATE)]))) == pytest.approx(delay_s * RATE, abs=2)
    assert active_level_db(speechlike, RATE) - active_level_db(e.astype(np.float32), RATE) == pytest.approx(
        15.0, abs=0.05
    )
    talker = degrade.echo(speechlike, RATE, speechlike, delay_s, 20.0, path)  # talker echo: own voice
    assert talker.shape == speechlike.shape and not np.array_equal(talker, speechlike)
