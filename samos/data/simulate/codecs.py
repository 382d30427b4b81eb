"""Speech and audio codecs through PyAV (ffmpeg): encode, then decode, back at the input rate.

A codec run takes mono float32 ``(samples,)`` at ``rate`` Hz, resamples to the codec's rate, encodes,
decodes and resamples back; the result has the input's length (codec delay removed).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, cast

import numpy as np

from samos.audio import resample

if TYPE_CHECKING:
    from av.audio.codeccontext import AudioCodecContext


class CodecError(ValueError):
    """A codec that this PyAV/ffmpeg build cannot run, or a bad codec setting."""


@dataclass(frozen=True)
class CodecSpec:
    """One codec setting. ``bitrate_kbps`` is ignored by the fixed-rate codecs (G.711, G.722)."""

    name: str
    """``opus``, ``g722``, ``mulaw``, ``alaw``, ``amr_nb``, ``mp3`` or ``aac``."""
    bitrate_kbps: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.name}@{self.bitrate_kbps:g}k" if self.bitrate_kbps else self.name


# name -> (ffmpeg encoder, ffmpeg decoder, codec sample rate Hz, encoder sample format, frame size or None)
_CODECS: dict[str, tuple[str, str, int, str, int | None]] = {
    "opus": ("libopus", "libopus", 48_000, "flt", 960),
    "g722": ("g722", "g722", 16_000, "s16", None),
    "mulaw": ("pcm_mulaw", "pcm_mulaw", 8_000, "s16", None),
    "alaw": ("pcm_alaw", "pcm_alaw", 8_000, "s16", None),
    "amr_nb": ("libopencore_amrnb", "amrnb", 8_000, "s16", 160),
    "mp3": ("libmp3lame", "mp3float", 48_000, "fltp", 1152),
    "aac": ("aac", "aac", 48_000, "fltp", 1024),
}
AMR_NB_MODES = (4.75, 5.15, 5.9, 6.7, 7.4, 7.95, 10.2, 12.2)


def available(name: str) -> bool:
    """Whether the installed PyAV/ffmpeg can encode and decode ``name``."""
    import av

    enc, dec = _CODECS[name][:2]
    return enc in av.codecs_available and dec in av.codecs_available


def available_codecs() -> list[str]:
    """The codec names of this module that the installed PyAV/ffmpeg can run."""
    return [n for n in _CODECS if available(n)]


def _to_frames(x: np.ndarray, rate: int, fmt: str, frame: int):  # noqa: ANN202 - av.AudioFrame iterator
    import av

    pts = 0
    for start in range(0, len(x), frame):
        chunk = x[start : start + frame]
        if len(chunk) < frame:
            chunk = np.pad(chunk, (0, frame - len(chunk)))
        if fmt == "s16":
            arr = (np.clip(chunk, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        else:
            arr = chunk.astype(np.float32).reshape(1, -1)
        f = av.AudioFrame.from_ndarray(arr, format=fmt, layout="mono")
        f.sample_rate = rate
        f.pts = pts
        f.time_base = Fraction(1, rate)
        pts += frame
        yield f


def _decoded(frame) -> np.ndarray:  # noqa: ANN001 - av.AudioFrame
    arr = frame.to_ndarray()
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float32) / 32768.0
    if frame.format.is_planar:
        return arr.mean(axis=0).astype(np.float32)
    ch = len(frame.layout.channels)
    return arr.reshape(-1, ch).mean(axis=1).astype(np.float32)


def run_codec(audio: np.ndarray, rate: int, spec: CodecSpec) -> np.ndarray:
    """Encode and decode ``audio`` with ``spec``; returns float32 ``(samples,)`` at ``rate``."""
    import av

    if spec.name not in _CODECS:
        raise CodecError(f"unknown codec {spec.name!r} (known: {', '.join(_CODECS)})")
    if not available(spec.name):
        raise CodecError(f"codec {spec.name!r} is not in this PyAV/ffmpeg build")
    enc_name, dec_name, crate, fmt, frame = _CODECS[spec.name]
    x = resample(audio, rate, crate)
    enc = cast("AudioCodecContext", av.CodecContext.create(enc_name, "w"))
    enc.sample_rate = crate
    enc.layout = "mono"
    enc.format = fmt
    enc.time_base = Fraction(1, crate)
    if spec.name == "amr_nb":
        mode = min(AMR_NB_MODES, key=lambda m: abs(m - spec.bitrate_kbps))
        enc.bit_rate = int(mode * 1000)
    elif spec.bitrate_kbps:
        enc.bit_rate = int(spec.bitrate_kbps * 1000)
    if spec.name == "opus":
        enc.options = {"application": "voip"}
    try:
        enc.open()
    except av.error.FFmpegError as e:
        raise CodecError(f"{spec.label}: cannot open the encoder ({e})") from None
    size = frame or enc.frame_size or 320
    dec = cast("AudioCodecContext", av.CodecContext.create(dec_name, "r"))
    dec.sample_rate = crate
    dec.layout = "mono"
    out: list[np.ndarray] = []
    padded = np.concatenate([x, np.zeros(4 * size, np.float32)])  # flush the codec delay out
    for f in [*_to_frames(padded, crate, fmt, size), None]:
        for packet in enc.encode(f):
            for d in dec.decode(packet):
                out.append(_decoded(d))
    for d in dec.decode(None):
        out.append(_decoded(d))
    y = np.concatenate(out) if out else np.zeros(0, np.float32)
    delay = codec_delay(x, y)
    y = y[delay : delay + len(x)]
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    back = resample(y, crate, rate)
    n = len(audio)
    return np.pad(back, (0, max(0, n - len(back))))[:n].astype(np.float32)


def codec_delay(x: np.ndarray, y: np.ndarray, max_delay: int = 8192) -> int:
    """Codec delay in samples: the lag (0..max_delay) that best aligns ``y`` with ``x``."""
    m = min(len(x), len(y) - max_delay) if len(y) > max_delay else 0
    if m <= 0:
        return 0
    seg = x[:m].astype(np.float64)
    n = 1 << int(np.ceil(np.log2(m + max_delay)))
    corr = np.fft.irfft(np.fft.rfft(y[: m + max_delay], n) * np.conj(np.fft.rfft(seg, n)), n)[: max_delay + 1]
    return int(np.argmax(corr))
