"""Opus decoding with the codec's own loss concealment, for aiortc receivers and plain RTP.

aiortc decodes Opus through PyAV with FFmpeg's libopus wrapper, which cannot conceal a lost packet:
FFmpeg takes an empty packet for the end of the stream and has no PLC or FEC option, so a lost
packet is simply missing audio. :class:`OpusPlcDecoder` calls the same libopus (the copy PyAV bundles,
else the system's ``libopus``) through ctypes instead:

- every received packet decodes exactly as FFmpeg's path decodes it (same library, same state;
  tested bit for bit);
- when the RTP timestamps jump (packets lost, or dropped by aiortc's jitter buffer), the missing audio
  is concealed before the packet that follows the gap: the last missing 20 ms from that packet's
  in-band FEC where the sender put some there (browsers do; libopus falls back to concealment when
  it finds none), the rest by libopus's packet loss concealment, which continues the last pitch and
  fades out. At most ``max_conceal_seconds`` of one gap are concealed; the rest stays a gap (silence
  downstream, see :mod:`samos.monitor.normalise`).

Concealed frames carry :data:`CONCEALED` in ``frame.opaque``, so the source can count them as lost.
A caller that knows a timestamp jump is not loss (discontinuous transmission, a new timeline: the
plain RTP source, :mod:`samos.monitor.sources.rtp`, tells by the sequence numbers) calls
:meth:`OpusPlcDecoder.resync` before the packet, and nothing is concealed before it.
The decoder has aiortc's ``Decoder`` interface (``decode(JitterFrame) -> [AudioFrame]``) and gives
what aiortc's Opus decoder gives: packed ``s16`` stereo 48 kHz frames with ``pts`` in 1/48000 s.

:meth:`OpusPlcDecoder.decode_blocks` is the cheap path of the batched hand-off
(:mod:`samos.monitor.sources.handoff`): many packets at once, decoded into one buffer and converted
to mono float32 in one numpy operation per run of contiguous audio (:class:`PcmBlock`), instead of
one ``AudioFrame`` and one down-mix per 20 ms. Same libopus calls in the same order, same samples;
the hand-off's decoder is a mono one (``channels=1``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fractions
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import av
import numpy as np

log = logging.getLogger(__name__)

RATE = 48_000
CHANNELS = 2
TIME_BASE = fractions.Fraction(1, RATE)
MAX_FRAME = 5_760
"""120 ms at 48 kHz: the longest Opus frame, and the most one concealment call may produce."""
STEP = 120
"""2.5 ms at 48 kHz: concealed durations are whole multiples of this (libopus's rule)."""
FEC_FRAME = 960
"""20 ms: the frame duration WebRTC senders use, and what in-band FEC restores."""
MAX_CONCEAL_SECONDS = 0.5
"""At most this much of one gap is concealed (libopus fades to silence well before)."""
CONCEALED = "samos:concealed"
"""``frame.opaque`` of a frame that is concealment of lost audio, not received audio."""


class OpusDecodeError(RuntimeError):
    """libopus refused a packet (corrupt data); the decoder keeps its state."""


_SCALE = np.float32(0.5 / 32768)


def stereo_to_mono(pcm: np.ndarray) -> np.ndarray:
    """Interleaved ``s16`` stereo ``[n, 2]`` -> mono float32 ``[n]`` in [-1, 1] (the mean of the two
    channels; the same arithmetic as :func:`samos.monitor.sources.webrtc.frame_to_mono`)."""
    return (pcm[:, 0].astype(np.float32) + pcm[:, 1]) * _SCALE


def _mono(pcm: np.ndarray) -> np.ndarray:
    """``s16`` mono ``[n, 1]`` -> float32 ``[n]`` in [-1, 1]."""
    return pcm[:, 0].astype(np.float32) * np.float32(1 / 32768)


@dataclass(frozen=True, slots=True)
class PcmBlock:
    """Decoded audio of consecutive packets of one stream, already mono.

    ``mono``: float32 ``[samples]`` at 48 kHz, starting at RTP time ``pts`` (1/48000 s) with no gap
    inside; its first ``concealed`` samples are the codec's concealment of lost packets. ``samples``,
    ``pts``, ``time_base`` and ``sample_rate`` read as on an ``av.AudioFrame``.
    """

    mono: np.ndarray
    pts: int
    concealed: int = 0
    sample_rate: int = RATE
    time_base: fractions.Fraction = TIME_BASE

    @property
    def samples(self) -> int:
        return len(self.mono)


class _Runs:
    """Cuts decoded pieces ``(start, pts, n, concealed)`` (in one buffer) into :class:`PcmBlock` runs:
    a run is contiguous in RTP time and holds concealment only at its start."""

    def __init__(self) -> None:
        self.done: list[tuple[int, int, int, int]] = []  # (buffer start, pts, samples, concealed)
        self._open: list[int] | None = None

    def add(self, start: int, pts: int, n: int, concealed: bool) -> None:
        run = self._open
        if run is not None and pts == run[1] + run[2] and (not concealed or run[3] == run[2]):
            run[2] += n
            run[3] += n if concealed else 0
            return
        self.close()
        self._open = [start, pts, n, n if concealed else 0]

    def close(self) -> None:
        if self._open is not None:
            self.done.append((self._open[0], self._open[1], self._open[2], self._open[3]))
            self._open = None


def _candidates() -> list[str]:
    """libopus shared libraries to try: the one bundled in PyAV's wheel first (same version as the
    FFmpeg path), then the system's."""
    here = Path(av.__file__).resolve().parent
    found: list[str] = []
    for folder in (here.parent / "av.libs", here / ".dylibs", here.parent / "av.dylibs"):
        if folder.is_dir():
            libs = sorted(folder.glob("libopus*"))
            found += [str(p) for p in libs if ".so" in p.name or p.suffix == ".dylib"]
    system = ctypes.util.find_library("opus")
    if system:
        found.append(system)
    return found


def open_libopus(path: str, keep_gil: bool = True) -> ctypes.CDLL:
    """libopus at ``path`` with the signatures used here; raises OSError or AttributeError.

    ``keep_gil``: its calls keep the GIL (``ctypes.PyDLL``; ``ctypes.CDLL`` releases it and takes it
    back around every call). A 20 ms packet decodes in about 40 us, less than that hand-over costs
    when the event loop wants the GIL back: with a busy Python thread beside it, the hand-off's
    decoding thread spent 214-251 us of CPU per packet releasing it and 65-67 us keeping it
    (``python scripts/opus_gil_cost.py``; docs/RELIABILITY.md, "The decoder keeps the GIL").
    """
    lib = ctypes.PyDLL(path) if keep_gil else ctypes.CDLL(path)
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decoder_destroy.restype = None
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_decode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.opus_get_version_string.restype = ctypes.c_char_p
    return lib


@cache
def libopus_path() -> str | None:
    """The first of :func:`_candidates` that opens as libopus, or None (logged once)."""
    for path in _candidates():
        try:
            lib = open_libopus(path)
        except (OSError, AttributeError) as e:
            log.debug("libopus at %s unusable: %s", path, e)
            continue
        log.info("Opus loss concealment: %s (%s)", lib.opus_get_version_string().decode(), path)
        return path
    log.warning("no libopus found for Opus loss concealment: lost packets become silence")
    return None


@cache
def load_libopus() -> ctypes.CDLL | None:
    """libopus as the decoders use it (:func:`open_libopus`, calls keeping the GIL), or None when
    none can be loaded."""
    path = libopus_path()
    return None if path is None else open_libopus(path)


def available() -> bool:
    """True when libopus can be loaded, i.e. :class:`OpusPlcDecoder` can be built."""
    return load_libopus() is not None


class OpusPlcDecoder:
    """aiortc-compatible Opus decoder that conceals lost packets (see the module doc).

    ``channels``: 2 decodes as aiortc does (stereo); 1 lets libopus down-mix a stereo stream itself
    (one synthesis instead of two; a mono stream, as browsers send by default, decodes to the very
    samples of the stereo path's channel mean, and a stereo one to within a rounding step of it:
    86 dB SNR on the soak's speech).

    ``decode(encoded_frame)``: ``encoded_frame.data`` (one Opus packet, bytes) and
    ``encoded_frame.timestamp`` (its RTP timestamp, 48 kHz units, unwrapped) -> the concealed frames
    for any gap before it, then its own decoded frame. Counters: ``concealed_samples`` (per channel,
    48 kHz), ``fec_frames`` (20 ms frames restored from FEC or concealed by an FEC call).
    """

    def __init__(self, max_conceal_seconds: float = MAX_CONCEAL_SECONDS, channels: int = CHANNELS) -> None:
        lib = load_libopus()
        if lib is None:
            raise OSError("libopus cannot be loaded: no Opus loss concealment")
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels!r}")
        self._lib = lib
        self.channels = channels
        err = ctypes.c_int(0)
        self._dec = lib.opus_decoder_create(RATE, channels, ctypes.byref(err))
        if err.value != 0 or not self._dec:
            raise OSError(f"opus_decoder_create failed ({err.value})")
        self._max_conceal = int(max_conceal_seconds * RATE) // STEP * STEP
        self._pcm = np.zeros((MAX_FRAME, channels), np.int16)
        self._base = self._pcm.ctypes.data
        self._at = 0  # where the next decoded samples go in ``_pcm`` (0 but in decode_blocks)
        self._expected: int | None = None
        self.concealed_samples = 0
        self.fec_frames = 0

    def __del__(self) -> None:
        dec, self._dec = getattr(self, "_dec", None), None
        if dec:
            self._lib.opus_decoder_destroy(dec)

    def decode(self, encoded_frame: Any) -> list[av.AudioFrame]:
        frames: list[av.AudioFrame] = []

        def emit(n: int, pts: int, concealed: bool) -> None:
            frames.append(self._frame(n, pts, concealed))

        self._packet(encoded_frame, emit)
        return frames

    def decode_blocks(self, encoded_frames: Iterable[Any]) -> tuple[list[PcmBlock], list[OpusDecodeError]]:
        """Decode many packets (as :meth:`decode`, in order, same state) into mono :class:`PcmBlock`
        runs: a new block starts wherever the RTP time jumps or concealment begins. Returns the blocks
        and the errors of the packets libopus refused (skipped; the decoder keeps its state)."""
        runs = _Runs()
        errors: list[OpusDecodeError] = []

        def keep(n: int, pts: int, concealed: bool) -> None:
            runs.add(self._at, pts, n, concealed)
            self._at += n  # the next piece goes after this one

        self._at = 0
        try:
            for encoded_frame in encoded_frames:
                try:
                    self._packet(encoded_frame, keep)
                except OpusDecodeError as e:
                    errors.append(e)
        finally:
            self._at = 0
        runs.close()
        pcm, mono = self._pcm, stereo_to_mono if self.channels == 2 else _mono
        blocks = [PcmBlock(mono(pcm[a : a + n]), pts, c) for a, pts, n, c in runs.done]
        return blocks, errors

    def _packet(self, encoded_frame: Any, emit: Callable[[int, int, bool], None]) -> None:
        """Decode one packet, concealing any gap before it; ``emit(n, pts, concealed)`` is called for
        each piece as soon as its ``n`` samples are in ``_pcm`` at ``_at``."""
        data: bytes = encoded_frame.data
        ts: int = encoded_frame.timestamp
        if not data:  # an empty payload carries no audio: the next packet's gap covers it
            return
        if self._expected is not None and ts > self._expected:
            self._conceal(self._expected, ts - self._expected, data, emit)
        n = self._run(data, MAX_FRAME, fec=False)
        emit(n, ts, False)
        self._expected = ts + n if self._expected is None else max(self._expected, ts + n)

    def resync(self) -> None:
        """The next packet is not preceded by lost audio: decode it without concealing any gap
        before it (the decoder's state is kept)."""
        self._expected = None

    def _conceal(
        self, start: int, gap: int, following: bytes, emit: Callable[[int, int, bool], None]
    ) -> None:
        """Stand in for ``gap`` missing samples from ``start``; ``following``: the packet after the gap
        (its FEC, when present, restores the last 20 ms)."""
        total = min(gap, self._max_conceal) // STEP * STEP
        fec = FEC_FRAME if total == gap and gap >= FEC_FRAME else 0  # FEC only for the frame right before
        pos, plc = start, total - fec
        while plc > 0:
            n = self._run(None, min(plc, MAX_FRAME), fec=False)
            emit(n, pos, True)
            pos, plc = pos + n, plc - n
        if fec:
            n = self._run(following, fec, fec=True)
            emit(n, pos, True)
            self.fec_frames += 1
        self.concealed_samples += total

    def _run(self, data: bytes | None, frame_size: int, fec: bool) -> int:
        """Decode into ``_pcm`` at ``_at`` (grown when needed); returns the samples per channel."""
        if self._at + frame_size > len(self._pcm):
            grown = np.zeros((2 * len(self._pcm) + frame_size, self.channels), np.int16)
            grown[: self._at] = self._pcm[: self._at]
            self._pcm, self._base = grown, grown.ctypes.data
        where = self._base + self._at * self.channels * 2  # s16: 2 bytes a sample
        n = self._lib.opus_decode(self._dec, data, len(data) if data else 0, where, frame_size, int(fec))
        if n < 0:
            raise OpusDecodeError(f"opus_decode failed ({n}) on a {len(data or b'')}-byte packet")
        return int(n)

    def _frame(self, n: int, pts: int, concealed: bool) -> av.AudioFrame:
        layout = "stereo" if self.channels == 2 else "mono"
        frame = av.AudioFrame.from_ndarray(self._pcm[:n].reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = TIME_BASE
        if concealed:
            frame.opaque = CONCEALED
        return frame
