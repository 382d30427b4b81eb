from __future__ import annotations

import numpy as np
import pytest
from monitor_helpers import speech_like

from samos.audio import resample
from samos.monitor.diagnostics import VadParams, analyse, bandwidth

P = VadParams()


def at48(x: np.ndarray, rate: int) -> np.ndarray:
    return resample(x, rate, 48_000)


def test_dead_air_is_silence() -> None:
    status, d = analyse(np.zeros(48_000 * 4, np.float32), 48_000, 0.0, P)
    assert status == "silence" and d["silence"] is True and d["active_ratio"] == 0.0


def test_steady_noise_is_low_speech_and_speech_is_ok() -> None:
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(48_000 * 4) * 0.05).astype(np.float32)
    assert analyse(noise, 48_000, 0.0, P)[0] == "low_speech"
    status, d = analyse(speech_like(4, 48_000), 48_000, 0.0, P)
    assert status == "ok" and 0.2 < d["active_ratio"] < 0.9


def test_noisy_speech_still_counts_as_speech() -> None:
    status, _ = analyse(speech_like(4, 48_000, level=0.1, noise=0.05), 48_000, 0.0, P)
    assert status == "ok"


def test_levels_in_dbov() -> None:
    sine = np.sin(2 * np.pi * 1000 * np.arange(48_000 * 2) / 48_000).astype(np.float32)
    _, d = analyse(sine, 48_000, 0.0, P)
    assert d["level_db"] == pytest.approx(-3.01, abs=0.02)
    half = np.concatenate([sine, np.zeros_like(sine)]) * 0.1
    _, d = analyse(half, 48_000, 0.0, P)
    assert d["active_level_db"] == pytest.approx(-23.01, abs=0.05)  # level over active frames only
    assert d["level_db"] == pytest.approx(-26.02, abs=0.05)


def test_clipping_ratio() -> None:
    x = np.clip(speech_like(4, 48_000, level=0.5), -0.5, 0.5) * 2
    _, d = analyse(x, 48_000, 0.0, P)
    assert d["clipping"] > 0.01
    assert analyse(speech_like(4, 48_000, level=0.05), 48_000, 0.0, P)[1]["clipping"] == 0.0


@pytest.mark.parametrize(("rate", "band"), [(8_000, "nb"), (16_000, "wb"), (32_000, "swb"), (48_000, "fb")])
def test_bandwidth_class_follows_the_source_rate(rate: int, band: str) -> None:
    x = at48(speech_like(4, rate, level=0.1), rate)
    hz, got = bandwidth(x)
    assert got == band and hz <= rate / 2 + 500


def test_reports_rate_and_dropped() -> None:
    _, d = analyse(speech_like(4, 48_000), 44_100, 0.125, P)
    assert d["rate"] == 44_100 and d["dropped_seconds"] == 0.125
