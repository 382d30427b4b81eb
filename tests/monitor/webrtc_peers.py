"""Real aiortc sender peers for the WebRTC tests: audio tracks paced in real time and a publisher
that signals through a real HTTP ``/offer`` endpoint.

Imported by tests as ``from webrtc_peers import ...`` (pytest puts this folder on sys.path).
``publish`` is the load generator's (``samos.bench.webrtc_load``): it raises ``PublishError`` when the
monitor refuses an offer.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from samos.bench.webrtc_load import publish  # noqa: F401 - the tests publish through the package's helper

RATE = 48_000
FRAME = 960  # 20 ms at 48 kHz
P835_DIR = Path("/work/shared/data/p835/fb48k")


def tone(seconds: float, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    """Mono float32 sine ``[seconds * 48000]``."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speech_clip(seconds: float) -> np.ndarray:
    """The first ``seconds`` of a real 48 kHz speech recording (repeated if shorter); without the
    recordings, syllable-like tone bursts (4 Hz on/off, so the monitor's VAD finds speech)."""
    files = sorted(P835_DIR.glob("c0_*.wav"))
    if files:
        audio, sr = sf.read(str(files[0]), dtype="float32", always_2d=True)
        if sr == RATE:
            mono = audio.mean(axis=1)
            reps = int(np.ceil(seconds * RATE / len(mono)))
            return np.tile(mono, reps)[: int(seconds * RATE)].astype(np.float32)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = (np.sin(2 * np.pi * 4 * t) > 0).astype(np.float32)
    return (tone(seconds, 220.0, 0.2) + tone(seconds, 1300.0, 0.05)) * envelope


class ArrayTrack(MediaStreamTrack):
    """Plays a mono float32 array at 48 kHz as 20 ms s16 stereo frames, paced in real time.

    ``skip``: {frame index: samples} -- jump the timestamps forward after that frame (the receiver
    sees the jump exactly as it would see lost packets). After the audio the track either ends
    (``end="stop"``) or goes quiet without ending (``end="hang"``, like a sender whose media stopped).
    """

    kind = "audio"

    def __init__(self, audio: np.ndarray, *, skip: dict[int, int] | None = None, end: str = "stop") -> None:
        super().__init__()
        pcm = np.clip(audio, -1.0, 1.0)
        self._pcm = (pcm * 32767).astype(np.int16)
        self._skip = skip or {}
        self._end = end
        self._index = 0
        self._pts = 0
        self._t0: float | None = None
        self.sent = 0

    async def recv(self) -> av.AudioFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        start = self._index * FRAME
        if start >= len(self._pcm):
            if self._end == "hang":
                await asyncio.Event().wait()  # never returns: cancelled when the connection closes
            self.stop()
            raise MediaStreamError
        delay = self._t0 + self._index * FRAME / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        block = self._pcm[start : start + FRAME]
        if len(block) < FRAME:
            block = np.pad(block, (0, FRAME - len(block)))
        # Stereo with equal channels, as a browser sends a microphone (aiortc's encoder would upmix
        # mono at -3 dB per channel).
        stereo = np.repeat(block, 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME + self._skip.get(self._index, 0)
        self._index += 1
        self.sent += 1
        return frame


async def offer_for(track: MediaStreamTrack | None, *, video: bool = False) -> RTCPeerConnection:
    """A sender peer connection with ``track`` (and optionally a video transceiver) and its offer set."""
    pc = RTCPeerConnection()
    if track is not None:
        pc.addTrack(track)
    if video:
        pc.addTransceiver("video", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


def drop_rtp_packets(pc: RTCPeerConnection, lose: set[int]) -> list[int]:
    """Make the sender ``pc`` lose the RTP packets whose index (0 = first packet sent) is in ``lose``,
    as a lossy network would: they are never put on the wire. Returns the lost sequence numbers."""
    from aiortc.rtp import is_rtcp

    transport = pc.getSenders()[0].transport
    send = transport._send_rtp
    lost: list[int] = []
    count = 0

    async def lossy_send(data: bytes) -> None:
        nonlocal count
        if not is_rtcp(data):
            count += 1
            if count - 1 in lose:
                lost.append(int.from_bytes(data[2:4], "big"))
                return
        await send(data)

    transport._send_rtp = lossy_send  # type: ignore[method-assign]
    return lost
