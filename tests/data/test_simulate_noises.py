"""Recorded noises: a folder of files becomes unit-RMS 48 kHz mono segments of any length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.data.simulate.noises import NoiseError, load_noise_bank


def test_bank_reads_resamples_and_loops(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "cafe.wav", 0.1 * rng.standard_normal((22_050, 2)), 44_100)  # 0.5 s stereo
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "fan.flac", 0.3 * np.sin(np.arange(16_000) * 0.3), 16_000)
    (tmp_path / "notes.txt").write_text("not audio")
    bank = load_noise_bank(str(tmp_path))
    assert bank.names == ("cafe", "fan")
    assert len(bank.audio[0]) == 24_000 and len(bank.audio[1]) == 48_000  # at 48 kHz
    seen = set()
    for i in range(20):
        name, seg = bank.segment(3 * 48_000, np.random.default_rng(i))  # longer than either file
        seen.add(name)
        assert seg.shape == (144_000,) and seg.dtype == np.float32
        assert np.sqrt(np.mean(seg.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    assert seen == {"cafe", "fan"}


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(NoiseError, match="not found"):
        load_noise_bank(str(tmp_path / "none"))
    with pytest.raises(NoiseError, match="no audio"):
        load_noise_bank(str(tmp_path))


@pytest.mark.skipif(not Path("/work/shared/data/noise").is_dir(), reason="the shared noise folder is absent")
def test_shared_recordings_load() -> None:
    bank = load_noise_bank("/work/shared/data/noise")
    assert {"city", "coffee-shop", "train", "wind", "boat"} <= set(bank.names)
