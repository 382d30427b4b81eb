"""Peers run as their authors run them (DNSMOS via speechmos's reference code), 1 thread, cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.audio import AudioError, resample
from samos.bench.peers import DistillMos, DnsmosP835, PeerCache, PeerError, file_sha256, predict_files


def _speechy(seconds: float, sr: int, seed: int = 0, snr_db: float = 20.0) -> np.ndarray:
    """A harmonic, syllable-gated signal with white noise (float32, peak ~0.5)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 15))
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    x = voiced * env
    x = x / np.abs(x).max() * 0.5
    noise = rng.normal(0, 1, len(t)) * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


@pytest.fixture(scope="module")
def dnsmos() -> DnsmosP835:
    return DnsmosP835()


def test_dnsmos_windows_follow_the_reference() -> None:
    # a short clip is doubled until >= 9.01 s (1 s -> 16 s: 7 windows at the 1 s hop), as in the reference
    assert len(DnsmosP835.windows(np.zeros(16_000, np.float32))) == 7
    assert len(DnsmosP835.windows(np.zeros(5 * 16_000, np.float32))) == 1
    assert len(DnsmosP835.windows(np.zeros(12 * 16_000, np.float32))) == 3
    assert all(len(w) == 144_160 for w in DnsmosP835.windows(np.zeros(20 * 16_000, np.float32)))


def test_dnsmos_matches_speechmos_reference(dnsmos: DnsmosP835) -> None:
    pytest.importorskip("librosa")
    from speechmos import dnsmos as reference

    x = _speechy(2.0, 16_000)
    ours = dnsmos.predict(x, 16_000)
    ref = reference.run(x, 16_000)
    for ours_key, ref_key in (
        ("ovrl", "ovrl_mos"),
        ("sig", "sig_mos"),
        ("bak", "bak_mos"),
        ("p808", "p808_mos"),
    ):
        assert ours[ours_key] == pytest.approx(float(ref[ref_key]), abs=1e-4)


def test_dnsmos_ranks_noise(dnsmos: DnsmosP835) -> None:
    clean = dnsmos.predict(_speechy(2.0, 48_000, snr_db=40), 48_000)
    noisy = dnsmos.predict(_speechy(2.0, 48_000, snr_db=0), 48_000)
    assert noisy["bak"] < clean["bak"]
    with pytest.raises(PeerError, match="NaN"):
        dnsmos.predict(np.full(16_000, np.nan, np.float32), 16_000)


def test_distillmos_scores_in_range_and_rate_independent() -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    peer = DistillMos()
    x48 = _speechy(2.0, 48_000)
    a = peer.predict(x48, 48_000)["mos"]
    b = peer.predict(resample(x48, 48_000, 16_000), 16_000)["mos"]
    assert 1.0 <= a <= 5.0
    assert a == pytest.approx(b, abs=1e-5)
    with pytest.raises(PeerError, match="mono"):
        peer.predict(np.zeros((10, 2), np.float32), 16_000)
    assert peer.version.startswith("distillmos-")


class _CountingPeer:
    """Wraps a real peer and counts how often it really runs."""

    def __init__(self, inner: DnsmosP835) -> None:
        self.inner, self.calls = inner, 0
        self.name, self.outputs = inner.name, inner.outputs

    @property
    def version(self) -> str:
        return self.inner.version

    def predict(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        self.calls += 1
        return self.inner.predict(audio, sr)


def test_predict_files_caches_by_content(tmp_path: Path, dnsmos: DnsmosP835) -> None:
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, _speechy(1.0, 16_000, seed=1), 16_000)
    sf.write(b, _speechy(1.0, 16_000, seed=1), 16_000)  # same bytes: one cache entry
    peer = _CountingPeer(dnsmos)
    cache = PeerCache(tmp_path / "cache")
    first = predict_files(peer, [a, b], cache)
    assert peer.calls == 1
    assert first[str(a)] == first[str(b)]
    again = predict_files(peer, [a], cache)
    assert peer.calls == 1 and again[str(a)] == first[str(a)]
    assert cache.get(dnsmos.version, file_sha256(a)) == first[str(a)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(AudioError, match="bad.wav"):
        predict_files(peer, [bad], cache)
