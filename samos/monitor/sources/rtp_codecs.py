"""RTP audio codecs: what each one's RTP clock, audio rate and static payload type are, and a
:class:`Decoder` from payloads to float32 samples. Shared by the RTP source and the telephony
websockets; aiortc's decoders (libopus and FFmpeg's through PyAV) do the decoding, ``l16`` is read
directly (network byte order, RFC 3551). With ``conceal=True`` Opus is decoded by
:class:`~samos.monitor.sources.opus_plc.OpusPlcDecoder` instead (the same libopus, called directly),
which conceals lost packets with libopus's PLC and the next packet's in-band FEC
(:meth:`Decoder.decode_after`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Codec:
    """An RTP audio codec: ``clock`` is the RTP clock rate, ``rate`` the decoded audio rate (Hz; None:
    given by the stream spec), ``pt`` the static payload type (None: dynamic)."""

    name: str
    clock: int | None
    rate: int | None
    pt: int | None


CODECS: dict[str, Codec] = {
    "opus": Codec("opus", 48_000, 48_000, None),
    "pcmu": Codec("pcmu", 8_000, 8_000, 0),
    "pcma": Codec("pcma", 8_000, 8_000, 8),
    "g722": Codec("g722", 8_000, 16_000, 9),  # RFC 3551: G.722 runs an 8 kHz RTP clock
    "l16": Codec("l16", None, None, None),
}


class Decoder:
    """Payload -> float32 ``[n]`` or ``[n, channels]`` at the codec's rate (``rate`` Hz).

    ``conceal``: Opus with loss concealment where libopus loads (``concealing`` says whether it is
    on); other codecs ignore it.
    """

    def __init__(self, codec: str, rate: int, channels: int = 1, conceal: bool = False) -> None:
        self.codec, self.rate, self.channels = codec, rate, channels
        self._aiortc: Any = None
        self.concealing = False
        if codec == "opus" and conceal:
            from samos.monitor.sources import opus_plc

            if opus_plc.available():
                self._aiortc, self.concealing = opus_plc.OpusPlcDecoder(), True
        if codec != "l16" and self._aiortc is None:
            from aiortc.codecs import G722Decoder, OpusDecoder, PcmaDecoder, PcmuDecoder

            factory: dict[str, Callable[[], Any]] = {
                "opus": OpusDecoder,
                "pcmu": PcmuDecoder,
                "pcma": PcmaDecoder,
                "g722": G722Decoder,
            }
            self._aiortc = factory[codec]()

    def decode(self, payload: bytes, timestamp: int) -> np.ndarray:
        """Decode one packet's payload; raises ``ValueError`` on a payload the codec refuses.
        (A concealing decoder conceals a timestamp gap before it: see :meth:`decode_after`.)"""
        return self.decode_after(payload, timestamp, lost=True)[0]

    def decode_after(self, payload: bytes, timestamp: int, lost: bool) -> tuple[np.ndarray, int]:
        """Decode one packet; ``lost``: packets just before it were lost. Returns the audio and how
        many of its first samples are concealment: with :attr:`concealing` and ``lost``, the
        decoder's concealment of the timestamp gap before the packet (at most 0.5 s), else 0 (a gap
        without loss, e.g. discontinuous transmission, is not concealed). ``timestamp``: RTP units,
        unwrapped. Raises ``ValueError`` on a payload the codec refuses."""
        if self._aiortc is None:  # L16: big-endian signed 16-bit, interleaved channels
            width = 2 * self.channels
            if len(payload) % width:
                raise ValueError(f"L16 payload of {len(payload)} bytes is not a whole number of frames")
            pcm = np.frombuffer(payload, ">i2").astype(np.float32) * np.float32(1 / 32768)
            return (pcm if self.channels == 1 else pcm.reshape(-1, self.channels)), 0
        import av
        from aiortc.jitterbuffer import JitterFrame

        from samos.monitor.sources.opus_plc import CONCEALED, OpusDecodeError
        from samos.monitor.sources.webrtc import frame_to_mono

        if self.concealing and not lost:
            self._aiortc.resync()
        ts = timestamp if self.concealing else timestamp & 0xFFFFFFFF  # the concealer needs it unwrapped
        try:
            frames = self._aiortc.decode(JitterFrame(payload, ts))
        except (av.FFmpegError, ValueError, OpusDecodeError) as e:
            raise ValueError(f"{self.codec}: {e}") from None
        parts = [frame_to_mono(f) for f in frames]
        concealed = sum(len(p) for p, f in zip(parts, frames, strict=True) if f.opaque == CONCEALED)
        if not parts:
            return np.zeros(0, np.float32), 0
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)), concealed
