"""Recorded background noise: every audio file under a folder (e.g. ``/work/shared/data/noise``:
street, cafe, train, wind, boat engine), read once per process, mixed down to mono at 48 kHz.
A clip takes a random stretch of a random file, looped if the file is shorter than the clip."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from samos.audio import SPEC_RATE, load_audio, resample

AUDIO_SUFFIXES = (".ogg", ".wav", ".flac", ".opus", ".mp3")


class NoiseError(ValueError):
    """A configured noise folder that is missing or holds no audio."""


@dataclass(frozen=True)
class NoiseBank:
    """Recorded noises: names (file stems) and their audio (float32 mono at 48 kHz, unit RMS)."""

    names: tuple[str, ...]
    audio: tuple[np.ndarray, ...]

    def segment(self, n: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        """A random stretch of ``n`` samples of a random recording: (its name, unit-RMS float32)."""
        k = int(rng.integers(len(self.names)))
        x = self.audio[k]
        start = int(rng.integers(len(x)))
        looped = np.tile(x, int(np.ceil((start + n) / len(x))) + 1)[start : start + n]
        looped = looped - looped.mean()
        return self.names[k], (looped / (np.sqrt(np.mean(looped.astype(np.float64) ** 2)) + 1e-12)).astype(
            np.float32
        )


@lru_cache(maxsize=4)
def load_noise_bank(folder: str) -> NoiseBank:
    """All recordings under ``folder`` (any depth), sorted by path."""
    base = Path(folder)
    if not base.is_dir():
        raise NoiseError(f"degrade.noise_dir: folder {base} not found (or set it to null)")
    files = sorted(p for p in base.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise NoiseError(f"degrade.noise_dir: no audio files ({', '.join(AUDIO_SUFFIXES)}) under {base}")
    names, audio = [], []
    for p in files:
        x, sr = load_audio(p)
        x = resample(x, sr, SPEC_RATE)
        if len(x) < SPEC_RATE // 10:
            continue
        x = x - x.mean()
        audio.append((x / (np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)).astype(np.float32))
        names.append(p.stem)
    if not names:
        raise NoiseError(f"degrade.noise_dir: no usable recording under {base}")
    return NoiseBank(tuple(names), tuple(audio))
