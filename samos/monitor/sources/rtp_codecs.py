"""RTP audio codecs: what each one's RTP clock, audio rate and static payload type are, and a
:class:`Decoder` from payloads to float32 samples. Shared by the RTP source and the telephony
websockets; aiortc's decoders (libopus and FFmpeg's through PyAV) do the decoding, ``l16`` is read
directly (network byte order, RFC 3551).
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
    """Payload -> float32 ``[n]`` or ``[n, channels]`` at the codec's rate (``rate`` Hz)."""

    def __init__(self, codec: str, rate: int, channels: int = 1) -> None:
        self.codec, self.rate, self.channels = codec, rate, channels
        self._aiortc: Any = None
        if codec != "l16":
            from aiortc.codecs import G722Decoder, OpusDecoder, PcmaDecoder, PcmuDecoder

            factory: dict[str, Callable[[], Any]] = {
                "opus": OpusDecoder,
                "pcmu": PcmuDecoder,
                "pcma": PcmaDecoder,
                "g722": G722Decoder,
            }
            self._aiortc = factory[codec]()

    def decode(self, payload: bytes, timestamp: int) -> np.ndarray:
        """Decode one packet's payload; raises ``ValueError`` on a payload the codec refuses."""
        if self._aiortc is None:  # L16: big-endian signed 16-bit, interleaved channels
            width = 2 * self.channels
            if len(payload) % width:
                raise ValueError(f"L16 payload of {len(payload)} bytes is not a whole number of frames")
            pcm = np.frombuffer(payload, ">i2").astype(np.float32) * np.float32(1 / 32768)
            return pcm if self.channels == 1 else pcm.reshape(-1, self.channels)
        import av
        from aiortc.jitterbuffer import JitterFrame

        from samos.monitor.sources.webrtc import frame_to_mono

        try:
            frames = self._aiortc.decode(JitterFrame(payload, timestamp & 0xFFFFFFFF))
        except (av.FFmpegError, ValueError) as e:
            raise ValueError(f"{self.codec}: {e}") from None
        parts = [frame_to_mono(f) for f in frames]
        if not parts:
            return np.zeros(0, np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
