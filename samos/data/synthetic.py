"""A rated corpus synthesised on the spot: speech-like signals with degradations of known severity.

Used by ``configs/smoke.yaml`` and the tests: every clip is written as a real audio file (several
sample rates, some stereo, varied lengths) plus a generic manifest, so training and evaluation read
it through exactly the path that real corpora take.

Signal: a harmonic source (f0 90-240 Hz with vibrato) shaped by three formant-like resonances,
gated by a 3-5 Hz syllable envelope, plus short fricative noise bursts. Degradations, each lowering
the label by a fixed amount:

- bandwidth: the file's sample rate (8 kHz audio holds 0-4 kHz only), ``1.4 * log(20k/bw)/log(5)``;
- additive white noise at SNR 0-30 dB (or none), ``2.6 * (35 - snr) / 35``;
- hard clipping of the loudest samples, up to 0.9.

``mos = clip(4.7 - penalties, 1, 5)``: an ordering a model can learn in seconds.
Torch-free.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from samos.audio import resample
from samos.config import ConfigError, to_dict
from samos.data.manifest import Item, write_manifest

BASE_RATE = 48_000


@dataclass(frozen=True)
class SyntheticConfig:
    """How many clips to synthesise and how.

    ``seconds``: mean clip length (each clip is 0.5-1.5 times it); ``rates``: sample rates (Hz) the
    files are written at; ``stereo_fraction``: share of two-channel files; ``seed``: the corpus seed
    (train and valid splits derive different seeds from it).
    """

    train_items: int = 96
    valid_items: int = 32
    seconds: float = 2.0
    rates: tuple[int, ...] = (8000, 16000, 22050, 24000, 44100, 48000)
    stereo_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train_items < 2 or self.valid_items < 2:
            raise ConfigError("synthetic: train_items and valid_items must be >= 2")
        if not 0.1 <= self.seconds <= 60:
            raise ConfigError("synthetic.seconds must be in [0.1, 60]")
        if not self.rates or min(self.rates) < 8000 or max(self.rates) > BASE_RATE:
            raise ConfigError("synthetic.rates must be sample rates in 8000-48000 Hz")


def speech_like(seconds: float, rng: np.random.Generator, rate: int = BASE_RATE) -> np.ndarray:
    """A clean speech-like waveform, float32 ``(samples,)`` at ``rate`` Hz, peak about 0.5."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = rng.uniform(90, 240) * (1 + 0.06 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = np.cumsum(f0) / rate
    src = 2 * (phase % 1.0) - 1  # sawtooth: every harmonic of f0, amplitude 1/k
    # formant envelope applied in the frequency domain (one FFT: cheap for any length)
    n_fft = 1 << max(0, n - 1).bit_length()  # a power of two: pocketfft is slow on prime lengths
    spec = np.fft.rfft(src, n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    formants = rng.uniform([500, 1200, 2500], [900, 2200, 3500])
    env_f = sum(1.0 / (1 + ((freqs - f) / (0.15 * f)) ** 2) for f in formants) + 0.02
    env_f = env_f * (freqs < min(12_000, rate / 2 - 500))
    voiced = np.fft.irfft(spec * env_f, n_fft)[:n]
    n_syll = max(1, int(seconds * 4))
    gate = (rng.random(n_syll) > 0.15).repeat(int(np.ceil(n / n_syll)))[:n]
    syll = 0.5 * (1 - np.cos(2 * np.pi * rng.uniform(3, 5) * t))
    out = voiced * syll * gate
    # fricative bursts: high-passed noise (first difference)
    noise = np.diff(rng.standard_normal(n + 1))
    bursts = (np.sin(2 * np.pi * rng.uniform(1, 2) * t + rng.uniform(0, 6)) > 0.9).astype(float)
    out += 0.15 * np.abs(out).max() * noise * bursts
    out = out / (np.abs(out).max() + 1e-9) * 0.5
    return out.astype(np.float32)


def degrade(
    clean48: np.ndarray, rate: int, snr_db: float | None, clip_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Band-limit (by resampling to ``rate``), add white noise at ``snr_db``, clip ``clip_fraction``."""
    x = resample(clean48, BASE_RATE, rate).astype(np.float64)
    if snr_db is not None:
        p = float(np.mean(x**2)) + 1e-12
        x = x + rng.standard_normal(len(x)) * np.sqrt(p / 10 ** (snr_db / 10))
    if clip_fraction > 0:
        level = float(np.quantile(np.abs(x), 1 - clip_fraction))
        x = np.clip(x, -level, level) / max(level, 1e-6) * 0.7
    peak = np.abs(x).max()
    if peak > 0.99:
        x = x / peak * 0.99
    return x.astype(np.float32)


def quality_label(rate: int, snr_db: float | None, clip_fraction: float) -> float:
    """The known MOS of a degradation (see the module docstring)."""
    bw = rate / 2
    bw_pen = 1.4 * max(0.0, np.log(20_000 / bw)) / np.log(5)
    noise_pen = 0.0 if snr_db is None else 2.6 * float(np.clip((35 - snr_db) / 35, 0, 1))
    clip_pen = 0.9 * min(1.0, clip_fraction / 0.2)
    return float(np.clip(4.7 - bw_pen - noise_pen - clip_pen, 1.0, 5.0))


def _fingerprint(cfg: SyntheticConfig, split: str) -> str:
    blob = json.dumps({"cfg": to_dict(cfg), "split": split, "v": 1}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def generate(cfg: SyntheticConfig, folder: str | Path, split: str = "train") -> Path:
    """Write the ``split`` ("train" or "valid") clips and ``<split>.csv`` under ``folder``.

    Idempotent: an existing corpus with the same settings is reused. Returns the manifest path.
    """
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
    root = Path(folder)
    manifest = root / f"{split}.csv"
    stamp = root / f"{split}.fingerprint"
    fp = _fingerprint(cfg, split)
    if manifest.is_file() and stamp.is_file() and stamp.read_text().strip() == fp:
        return manifest
    n = cfg.train_items if split == "train" else cfg.valid_items
    rng = np.random.default_rng([cfg.seed, 0 if split == "train" else 1])
    audio_dir = root / split
    audio_dir.mkdir(parents=True, exist_ok=True)
    snrs: list[float | None] = [None, 30.0, 20.0, 10.0, 5.0, 0.0]
    items: list[Item] = []
    for i in range(n):
        rate = int(cfg.rates[i % len(cfg.rates)])
        snr = snrs[int(rng.integers(len(snrs)))]
        clip = float(rng.choice([0.0, 0.0, 0.0, 0.05, 0.2]))
        seconds = cfg.seconds * rng.uniform(0.5, 1.5)
        x = degrade(speech_like(seconds, rng), rate, snr, clip, rng)
        if rng.random() < cfg.stereo_fraction:
            x = np.stack([x, 0.8 * x], axis=1)
        cond = f"sr{rate}_snr{'clean' if snr is None else int(snr)}_clip{clip:g}"
        path = audio_dir / f"{split}_{i:04d}_{cond}.wav"
        sf.write(str(path), x, rate, subtype="PCM_16")
        items.append(Item(path=path, mos=quality_label(rate, snr, clip), std=0.5, sr=rate, condition=cond))
    write_manifest(manifest, items)
    stamp.write_text(fp)
    return manifest
