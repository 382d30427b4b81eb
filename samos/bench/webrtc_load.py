"""WebRTC load for the monitor: many real aiortc publishers replaying pre-encoded Opus, paced in real time.

A load generator must cost less than what it loads. aiortc encodes every 20 ms frame and computes
its RFC 6465 audio level in pure Python (about 2,000 Python-level multiplications per frame), which
at 32 publishers costs more CPU than the monitor receiving them. Here the audio is encoded to Opus
once (PyAV's libopus, 20 ms frames, 48 kHz stereo as a browser sends a microphone) and the packets
are replayed: aiortc's sender packs a pre-encoded packet into RTP as it is (no encoding, no level),
over a real peer connection (ICE, DTLS, SRTP) signalled through the monitor's ``POST /offer``.

As a script (used by ``samos bench soak``, one process per group of publishers)::

    python -m samos.bench.webrtc_load BASE_URL N SECONDS [--first I] [--token T] [--wav FILE]

connects publishers ``pub-I`` .. ``pub-{I+N-1}`` one at a time, prints ``ready``, streams SECONDS of
audio each, closes them and prints one JSON line ``{"sent_seconds": {name: seconds}, "started": {name:
t}}`` (``t``: ``time.monotonic()`` of each stream's first packet, the same clock on one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RATE = 48_000
FRAME = 960  # 20 ms at 48 kHz
TIME_BASE = fractions.Fraction(1, RATE)


class PublishError(RuntimeError):
    """The monitor refused the offer (or answered something that is not an answer)."""


def encode_opus(audio: np.ndarray, bitrate: int = 32_000, fec: bool = False) -> list[bytes]:
    """Mono float32 48 kHz ``[T]`` -> one Opus packet (bytes) per 20 ms frame, stereo as browsers send.
    ``fec``: in-band forward error correction (tuned for 10 % loss), as browsers send it."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = RATE
    enc.layout = "stereo"
    enc.format = "s16"
    enc.bit_rate = bitrate
    enc.options = {"frame_duration": "20", **({"fec": "1", "packet_loss": "10"} if fec else {})}
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    pcm = np.pad(pcm, (0, -len(pcm) % FRAME))
    packets: list[bytes] = []
    for i in range(0, len(pcm), FRAME):
        frame = av.AudioFrame.from_ndarray(
            np.repeat(pcm[i : i + FRAME], 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = i
        frame.time_base = TIME_BASE
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))
    if not packets:
        raise ValueError("no audio to encode")
    return packets


class OpusReplayTrack(MediaStreamTrack):
    """An audio track that plays ``packets`` (20 ms Opus packets) in a loop for ``seconds``, paced in real
    time. ``sent``: packets handed to the sender so far."""

    kind = "audio"

    def __init__(self, packets: Sequence[bytes], seconds: float) -> None:
        super().__init__()
        self._packets = packets
        self._total = max(1, round(seconds * RATE / FRAME))
        self._t0: float | None = None
        self.sent = 0

    @property
    def started(self) -> float | None:
        """``time.monotonic()`` when the first packet was handed to the sender (None: not yet); packet
        ``k`` is handed over at ``started + k * 0.02`` s."""
        return self._t0

    async def recv(self) -> av.Packet:
        if self._t0 is None:
            self._t0 = time.monotonic()
        if self.sent >= self._total:
            self.stop()
            raise MediaStreamError
        delay = self._t0 + self.sent * FRAME / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._packets[self.sent % len(self._packets)])
        packet.pts = self.sent * FRAME
        packet.time_base = TIME_BASE
        self.sent += 1
        return packet


async def publish(
    session: Any, base_url: str, track: Any, *, name: str | None = None, token: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Offer ``track`` to ``{base_url}/offer`` (aiohttp ``session``), apply the answer: ``(pc, answer)``."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    pc.addTrack(track)
    await pc.setLocalDescription(await pc.createOffer())
    body: dict[str, str] = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
    if name is not None:
        body["name"] = name
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.post(f"{base_url}/offer", json=body, headers=headers) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 200 or not isinstance(answer, dict) or "sdp" not in answer:
            await pc.close()
            raise PublishError(f"/offer answered {resp.status}: {answer}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    return pc, answer


async def run_publishers(
    base_url: str, n: int, seconds: float, audio: np.ndarray, *, first: int = 0, token: str | None = None
) -> dict[str, dict[str, float]]:
    """Connect ``n`` publishers, print ``ready``, stream, close. Returns per stream name the seconds
    sent (``sent_seconds``) and when its first packet was sent (``started``, ``time.monotonic()``)."""
    import aiohttp

    packets = encode_opus(audio)
    peers: list[tuple[Any, str, OpusReplayTrack]] = []
    async with aiohttp.ClientSession() as http:
        try:
            for i in range(first, first + n):  # one at a time: signalling is not what is measured
                track = OpusReplayTrack(packets, seconds)
                pc, answer = await publish(http, base_url, track, name=f"pub-{i}", token=token)
                peers.append((pc, str(answer.get("name", f"pub-{i}")), track))
            print("ready", flush=True)
            while any(t.readyState == "live" for _, _, t in peers):  # noqa: ASYNC110 - no end event
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
        finally:
            for pc, _, _ in peers:
                await pc.close()
    return {
        "sent_seconds": {name: t.sent * FRAME / RATE for _, name, t in peers},
        "started": {name: t.started for _, name, t in peers if t.started is not None},
    }


def speech(path: str | None = None) -> np.ndarray:
    """48 kHz mono float32 speech to publish: ``path`` (any format and rate) or the bundled demo call."""
    from importlib.resources import files

    from samos.audio import load_audio, resample, to_mono

    audio, sr = load_audio(path or str(files("samos") / "assets" / "demo_call_48k.flac"))
    mono = to_mono(audio)
    return resample(mono, sr, RATE) if sr != RATE else mono


def add_publisher_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every publisher process of the soak takes after its own: how many publishers,
    how long, the first name index, the token, the audio."""
    p.add_argument("n", type=int, help="publishers")
    p.add_argument("seconds", type=float, help="audio each publisher sends, seconds")
    p.add_argument("--first", type=int, default=0, help="index of the first publisher's name (pub-I)")
    p.add_argument("--token", default=None, help="publisher token")
    p.add_argument("--wav", default=None, help="audio to send (default: the bundled demo call)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m samos.bench.webrtc_load", description=__doc__.split("\n")[0])
    p.add_argument("base_url", help="the monitor's HTTP base URL (http://HOST:PORT)")
    add_publisher_arguments(p)
    args = p.parse_args(argv)
    sent = asyncio.run(
        run_publishers(
            args.base_url, args.n, args.seconds, speech(args.wav), first=args.first, token=args.token
        )
    )
    print(json.dumps(sent), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
