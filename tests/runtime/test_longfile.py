"""Streaming long files: block-by-block scoring gives exactly the one-shot result, in bounded memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.audio import AudioError, load_audio
from samos.runtime.longfile import duration_seconds, score_file_streaming
from samos.runtime.scorer import Scorer
from samos.runtime.windows import score_waveform


def noise(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    return (0.1 * rng.standard_normal(n) * np.sin(np.arange(n) / sr * 7)).astype(np.float32)


@pytest.mark.parametrize(
    ("sr", "seconds", "hop", "block"),
    [(8_000, 30.3, None, 0.37), (44_100, 7.77, 0.3, 1.0), (16_000, 0.7, None, 0.1), (22_050, 12.0, 0.5, 5.0)],
)
def test_streaming_equals_one_shot(
    tmp_path: Path, tiny_model: Path, sr: int, seconds: float, hop: float | None, block: float
) -> None:
    path = tmp_path / "a.flac"
    sf.write(path, noise(seconds, sr), sr)
    scorer = Scorer(tiny_model, providers=("cpu",), threads=1)
    audio, rate = load_audio(path)
    whole = score_waveform(scorer, audio, rate, hop_s=hop)
    streamed = score_file_streaming(scorer, path, hop_s=hop, batch_size=3, block_seconds=block)
    assert streamed == whole
    assert duration_seconds(path) == pytest.approx(seconds, abs=1e-3)


def test_streaming_errors(tmp_path: Path, tiny_model: Path) -> None:
    scorer = Scorer(tiny_model, providers=("cpu",), threads=1)
    x = noise(3.0, 16_000)
    x[40_000] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16_000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN/Inf samples near 2"):
        score_file_streaming(scorer, tmp_path / "nan.wav", block_seconds=0.5)
    sf.write(tmp_path / "short.wav", x[:100], 16_000)
    with pytest.raises(AudioError, match="too short"):
        score_file_streaming(scorer, tmp_path / "short.wav")
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(AudioError, match="not a readable audio file"):
        score_file_streaming(scorer, tmp_path / "text.wav")
    assert duration_seconds(tmp_path / "text.wav") is None
