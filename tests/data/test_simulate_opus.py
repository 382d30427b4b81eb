"""Opus calls through libopus: alignment, lost packets concealed by the decoder, FEC, bandwidth."""

from __future__ import annotations

import numpy as np
import pytest

from samos.data.simulate import opus
from samos.data.simulate.measure import effective_bandwidth_hz

pytestmark = pytest.mark.skipif(not opus.available(), reason="libopus.so.0 is not installed (libopus0)")
RATE = 48_000
F = opus.FRAME


def _voiced(seconds: float = 3.0) -> np.ndarray:
    """A vowel-like signal: 140 Hz harmonics with a spectral tilt and a slow level change, plus a
    little noise (so that every band carries something)."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * 140 * k * t + k) / k for k in range(1, 60) if 140 * k < 20_000)
    x = np.asarray(x) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    x += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


def _frame_rms(y: np.ndarray, k: int) -> float:
    return float(np.sqrt(np.mean(y[k * F : (k + 1) * F].astype(np.float64) ** 2)))


def test_loss_free_call_is_aligned_and_keeps_length() -> None:
    x = _voiced()
    y = opus.transmit(x, opus.OpusCall(32.0))
    assert y.shape == x.shape and y.dtype == np.float32
    mid = slice(RATE, 2 * RATE)
    lags = range(-50, 51)
    corr = [float(np.dot(y[mid], np.roll(x, lag)[mid])) for lag in lags]
    assert lags[int(np.argmax(corr))] == 0  # the codec delay is removed
    level = 10 * np.log10(np.mean(y[mid].astype(np.float64) ** 2) / np.mean(x[mid].astype(np.float64) ** 2))
    assert abs(level) < 1.5  # a parametric codec keeps the level, not the waveform


def test_lost_packets_are_concealed_by_the_decoder() -> None:
    x = _voiced()
    clean = opus.transmit(x, opus.OpusCall(24.0))
    lost = np.zeros(200, bool)
    lost[[60, 61, 62]] = True  # packets 60-62 are 1.2-1.26 s of the input (delay < 1 packet)
    y = opus.transmit(x, opus.OpusCall(24.0), lost)
    assert y.shape == x.shape
    assert np.array_equal(y[: 59 * F], clean[: 59 * F])  # nothing changes before the loss
    # PLC, not silence: the first concealed packet carries the signal on, at close to its level
    assert _frame_rms(y, 60) > 0.5 * _frame_rms(clean, 60)
    # continuity: no jump into the concealment bigger than the signal's own sample-to-sample steps
    step = np.abs(np.diff(y[59 * F : 61 * F])).max()
    assert step < 2.0 * np.abs(np.diff(clean[59 * F : 61 * F])).max()
    # the concealment is an extrapolation, not the lost audio: it differs from the loss-free decode
    assert not np.allclose(y[60 * F : 63 * F], clean[60 * F : 63 * F], atol=1e-3)
    # and a long burst fades out (libopus attenuates PLC that goes on)
    burst = np.zeros(200, bool)
    burst[60:80] = True
    z = opus.transmit(x, opus.OpusCall(24.0), burst)
    assert _frame_rms(z, 78) < 0.3 * _frame_rms(clean, 78)


def test_fec_recovers_a_lost_packet_better_than_plc() -> None:
    x = _voiced()
    lost = np.zeros(200, bool)
    lost[np.arange(40, 140, 5)] = True  # isolated losses: the next packet always arrives
    ref = opus.transmit(x, opus.OpusCall(32.0, fec=True, expected_loss_pct=20))
    plc = opus.transmit(x, opus.OpusCall(32.0, fec=False, expected_loss_pct=20), lost)
    fec = opus.transmit(x, opus.OpusCall(32.0, fec=True, expected_loss_pct=20), lost)

    def err(y: np.ndarray) -> float:
        return float(
            sum(np.sum((y[k * F : (k + 1) * F] - ref[k * F : (k + 1) * F]) ** 2) for k in range(40, 140, 5))
        )

    assert err(fec) < 0.5 * err(plc)


def test_bandwidth_and_a_mid_call_switch() -> None:
    x = _voiced()
    wide = opus.transmit(x, opus.OpusCall(32.0, bandwidth_hz=20_000))
    narrow = opus.transmit(x, opus.OpusCall(32.0, bandwidth_hz=4_000))
    assert effective_bandwidth_hz(wide, RATE) > 15_000
    assert effective_bandwidth_hz(narrow, RATE) < 5_000
    y = opus.transmit(x, opus.OpusCall(32.0, bandwidth_hz=20_000), bandwidth_switch=(75, 8_000))
    assert effective_bandwidth_hz(y[: 70 * F], RATE) > 15_000
    assert effective_bandwidth_hz(y[80 * F :], RATE) < 9_500
