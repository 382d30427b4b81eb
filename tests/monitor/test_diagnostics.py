from __future__ import annotations

import numpy as np
import pytest
from monitor_helpers import speech_like

from samos.audio import resample
from samos.monitor.diagnostics import VadParams, analyse, bandwidth, speech_mask
from samos.runtime.vad import speech_prob

P = VadParams()


def at48(x: np.ndarray, rate: int) -> np.ndarray:
    return resample(x, rate, 48_000)


def probs(wave48: np.ndarray) -> np.ndarray:
    """The speech detector's frames of a 48 kHz window (as the monitor computes them)."""
    return speech_prob(resample(wave48, 48_000, 16_000))


def judge(wave48: np.ndarray, rate: int = 48_000, dropped: float = 0.0) -> tuple[str, dict]:
    return analyse(wave48, rate, dropped, P, probs(wave48))


def test_dead_air_is_silence() -> None:
    status, d = judge(np.zeros(48_000 * 4, np.float32))
    assert status == "silence" and d["silence"] is True and d["active_ratio"] == 0.0


@pytest.mark.parametrize("rms", [0.003, 0.05, 0.3])
def test_loud_noise_without_speech_is_no_speech_with_its_level(rms: float) -> None:
    noise = (np.random.default_rng(0).standard_normal(48_000 * 4) * rms).astype(np.float32)
    status, d = judge(noise)
    assert status == "no_speech" and d["silence"] is False
    assert d["level_db"] == pytest.approx(20 * np.log10(rms), abs=0.1)
    assert np.isnan(d["active_level_db"]) and d["active_ratio"] < P.min_active


def test_speech_is_ok() -> None:
    status, d = judge(speech_like(4, 48_000))
    assert status == "ok" and 0.2 < d["active_ratio"] <= 1.0


@pytest.mark.parametrize("snr_db", [-10, -5, 0, 20])
def test_speech_in_white_noise_is_speech_down_to_minus_10_db(snr_db: float) -> None:
    # the old energy gate called -5 dB SNR speech "low_speech" (no MOS): the worst calls went unscored
    level = 0.1
    noise = 0.7 * level * 10 ** (-snr_db / 20)
    status, d = judge(speech_like(4, 48_000, level=level, noise=noise, seed=3))
    assert status == "ok", d


def test_levels_in_dbov() -> None:
    sine = np.sin(2 * np.pi * 1000 * np.arange(48_000 * 2) / 48_000).astype(np.float32)
    _, d = analyse(sine, 48_000, 0.0, P, np.ones(2 * 31, np.float32))
    assert d["level_db"] == pytest.approx(-3.01, abs=0.02)
    half = np.concatenate([sine, np.zeros_like(sine)]) * 0.1
    speech = np.r_[np.ones(62), np.zeros(62)].astype(np.float32)  # the detector's frames: 2 s speech
    _, d = analyse(half, 48_000, 0.0, P, speech)
    assert d["active_level_db"] == pytest.approx(-23.01, abs=0.05)  # level over speech frames only
    assert d["level_db"] == pytest.approx(-26.02, abs=0.05)
    assert d["active_ratio"] == 0.5


def test_speech_mask_maps_detector_frames_onto_20ms_frames() -> None:
    # detector frames are 512 samples (32 ms) at 16 kHz, the first one `offset` samples into the window
    speech = np.array([True, False, True])
    got = speech_mask(speech, offset=100, n_frames=8)  # 20 ms frames: centres at 160, 480, 800, ...
    centres = np.arange(8) * 320 + 160 - 100
    want = [0 <= c < 3 * 512 and bool(speech[c // 512]) for c in centres]
    assert got.tolist() == want
    assert got.tolist() == [True, True, False, False, True, False, False, False]


def test_clipping_ratio() -> None:
    x = np.clip(speech_like(4, 48_000, level=0.5), -0.5, 0.5) * 2
    _, d = judge(x)
    assert d["clipping"] > 0.01
    assert judge(speech_like(4, 48_000, level=0.05))[1]["clipping"] == 0.0


@pytest.mark.parametrize(("rate", "band"), [(8_000, "nb"), (16_000, "wb"), (32_000, "swb"), (48_000, "fb")])
def test_bandwidth_class_follows_the_source_rate(rate: int, band: str) -> None:
    x = at48(speech_like(4, rate, level=0.1), rate)
    hz, got = bandwidth(x)
    assert got == band and hz <= rate / 2 + 500


def test_reports_rate_and_dropped() -> None:
    _, d = judge(speech_like(4, 48_000), 44_100, 0.125)
    assert d["rate"] == 44_100 and d["dropped_seconds"] == 0.125


def test_gate_defaults_are_the_monitors() -> None:
    from samos.monitor.config import WindowConfig

    w = WindowConfig()
    assert P == VadParams(w.silence_db, w.speech_threshold, w.min_active)
