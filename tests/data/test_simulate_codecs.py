"""Codec round trips through the installed PyAV/ffmpeg."""

from __future__ import annotations

import numpy as np
import pytest

from samos.data.simulate import degrade
from samos.data.simulate.codecs import CodecError, CodecSpec, available_codecs, run_codec
from samos.data.simulate.measure import effective_bandwidth_hz

RATE = 48_000


@pytest.fixture(scope="module")
def speechlike() -> np.ndarray:
    rng = np.random.default_rng(7)
    x = degrade.coloured_noise("pink", 2 * RATE, RATE, rng) * 0.05
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * np.arange(2 * RATE) / RATE)  # 3 Hz syllable-like envelope
    return (x * env).astype(np.float32)


def test_the_issue_codecs_are_available() -> None:
    have = available_codecs()
    for name in ("opus", "g722", "mulaw", "alaw", "mp3", "aac"):
        assert name in have


@pytest.mark.parametrize(
    ("spec", "max_bw"),
    [
        (CodecSpec("mulaw"), 4_100),
        (CodecSpec("alaw"), 4_100),
        (CodecSpec("g722"), 8_100),
        (CodecSpec("opus", 6), 8_100),
        (CodecSpec("opus", 64), 24_000),
        (CodecSpec("mp3", 32), 24_000),
        (CodecSpec("aac", 64), 24_000),
        (CodecSpec("amr_nb", 12.2), 4_100),
    ],
)
def test_round_trip_keeps_length_and_limits_band(
    speechlike: np.ndarray, spec: CodecSpec, max_bw: float
) -> None:
    if spec.name not in available_codecs():
        pytest.skip(f"{spec.name} is not in this ffmpeg build")
    y = run_codec(speechlike, RATE, spec)
    assert y.shape == speechlike.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert effective_bandwidth_hz(y, RATE) <= max_bw
    # aligned and similar in level: the codec delay is removed
    assert np.corrcoef(np.abs(y[::480]), np.abs(speechlike[::480]))[0, 1] > 0.3
    assert 0.3 < np.std(y) / np.std(speechlike) < 2.0


@pytest.mark.parametrize("name", ["g722", "mulaw"])
def test_waveform_codec_is_sample_aligned(speechlike: np.ndarray, name: str) -> None:
    y = run_codec(speechlike, RATE, CodecSpec(name))
    x = speechlike[RATE // 2 : RATE]
    lags = range(-200, 201)
    corr = [float(np.dot(x, y[RATE // 2 + k : RATE + k])) for k in lags]
    assert abs(lags[int(np.argmax(corr))]) <= 3


def test_unknown_codec_is_a_clear_error(speechlike: np.ndarray) -> None:
    with pytest.raises(CodecError, match="unknown codec"):
        run_codec(speechlike, RATE, CodecSpec("speex"))
