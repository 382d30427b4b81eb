"""One source of audio truth: rates, STFT geometry and the waveform helpers shared by train, export
and monitor.

Everything here needs only numpy, soundfile and soxr (never torch), so the monitor and the scoring
runtime can import it.

Conventions: a waveform is a float32 numpy array of shape ``(samples,)`` (mono) with values in
[-1, 1] at a known sample rate in Hz. Batches are ``(batch, samples)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

SSL_RATE = 16_000
"""Sample rate of the SSL (wav2vec2-family) branch, Hz."""
SPEC_RATE = 48_000
"""Sample rate of the spectrogram branch, Hz: every input is up-sampled to it."""
RATE_RATIO = SPEC_RATE // SSL_RATE
"""48 kHz samples per 16 kHz sample (3): the model's two inputs always have lengths T and 3*T."""
N_FFT = 320
"""STFT size of the spectrogram branch at 48 kHz (161 bins, 0-24 kHz; 6.67 ms window)."""
WIN_LENGTH = 320
HOP_LENGTH = 160
"""STFT hop at 48 kHz (3.33 ms)."""
N_BINS = N_FFT // 2 + 1
GRID48 = SPEC_RATE // 100
"""48 kHz samples per frame of the models' 10 ms feature grid (480); a spectrogram hop must divide it."""
LOG_MAG_CLIP = (1e-7, 1e7)
"""The magnitude is clipped to this range before log10 (paper's reference code)."""

MIN_RATE = 8_000
MAX_RATE = 192_000
RESAMPLE_QUALITY = "HQ"
"""soxr quality used everywhere, so that streaming and one-shot resampling agree."""


class AudioError(ValueError):
    """Audio that cannot be scored: unreadable, empty, non-finite or at an unsupported rate."""


def exact_div(x: int, y: int) -> int:
    """``x // y``, asserting that the division is exact."""
    if x % y:
        raise ValueError(f"{x} is not a multiple of {y}")
    return x // y


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Downmix to mono float32.

    ``audio``: ``(samples,)`` or ``(samples, channels)`` (soundfile's layout). Integer PCM is scaled
    to [-1, 1]. Float32 input that is already mono (``(samples,)`` or one channel) comes back as a
    view of it, not a copy.
    """
    a = np.asarray(audio)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]  # one channel: no mean to take
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        scale = float(max(abs(info.min), info.max))
        a = a.astype(np.float32) / scale
    a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        a = a.mean(axis=1, dtype=np.float32)
    elif a.ndim != 1:
        raise AudioError(f"expected (samples,) or (samples, channels) audio, got shape {a.shape}")
    return a


def check_rate(sr: int) -> int:
    """Validate a sample rate in Hz and return it as int."""
    if not isinstance(sr, (int, np.integer)) or not MIN_RATE <= int(sr) <= MAX_RATE:
        raise AudioError(f"unsupported sample rate {sr!r} Hz (supported: {MIN_RATE}-{MAX_RATE} Hz)")
    return int(sr)


def check_finite(audio: np.ndarray, what: str = "audio") -> None:
    """Raise AudioError when ``audio`` holds NaN or Inf samples."""
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise AudioError(f"{what} holds {bad} NaN/Inf samples")


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """One-shot resampling of a mono float32 waveform (soxr, the same filter as the streaming path)."""
    if sr_in == sr_out:
        return np.ascontiguousarray(audio, dtype=np.float32)
    out = soxr.resample(
        np.ascontiguousarray(audio, dtype=np.float32), sr_in, sr_out, quality=RESAMPLE_QUALITY
    )
    return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class ModelInput:
    """The model's two views of one waveform: 16 kHz (SSL branch) and 48 kHz (spectrogram branch).

    ``wave16``: ``(T,)`` float32; ``wave48``: ``(3*T,)`` float32.
    """

    wave16: np.ndarray
    wave48: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.wave16) / SSL_RATE


def model_input(audio: np.ndarray, sr: int) -> ModelInput:
    """Resample a mono waveform at ``sr`` Hz to the model's two rates (lengths T and exactly 3*T)."""
    sr = check_rate(sr)
    audio = to_mono(audio)
    check_finite(audio)
    w16 = resample(audio, sr, SSL_RATE)
    w48 = resample(audio, sr, SPEC_RATE)
    n = min(len(w16), len(w48) // RATE_RATIO)
    return ModelInput(w16[:n], w48[: n * RATE_RATIO])


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any file soundfile or PyAV decodes; returns (mono float32 ``(samples,)``, rate in Hz).

    Raises AudioError with a readable message for missing, empty or undecodable files.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file")
    try:
        import soundfile as sf

        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
        audio = to_mono(data)
    except Exception as sf_error:  # noqa: BLE001 - fall back to PyAV for compressed formats
        try:
            audio, sr = _load_with_av(p)
        except AudioError:
            raise
        except Exception as av_error:  # noqa: BLE001
            raise AudioError(f"{p}: not a readable audio file ({sf_error}; {av_error})") from None
    if audio.size == 0:
        raise AudioError(f"{p}: holds no audio samples")
    check_rate(sr)
    check_finite(audio, str(p))
    return audio, int(sr)


def _load_with_av(path: Path) -> tuple[np.ndarray, int]:
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a declared dependency of the extras that decode
        raise AudioError(
            f"{path}: soundfile cannot read it and PyAV is not installed (pip install av)"
        ) from e
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise AudioError(f"{path}: holds no audio stream")
        stream = streams[0]
        sr = stream.codec_context.sample_rate or stream.rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        parts: list[np.ndarray] = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    audio = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    return audio, int(sr)


def repeat_crop(audio: np.ndarray, length: int, start: int = 0) -> np.ndarray:
    """Repeat ``audio`` until it is long enough, then take ``length`` samples from ``start``.

    As the paper's training does for clips shorter or longer than the training length.
    """
    if audio.size == 0:
        raise AudioError("cannot crop empty audio")
    if len(audio) < start + length:
        reps = int(np.ceil((start + length) / len(audio)))
        audio = np.tile(audio, reps)
    return audio[start : start + length]


def dbfs(audio: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale square wave is 0 dBFS); -inf for silence."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")
