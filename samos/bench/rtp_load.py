"""RTP load for the monitor: plain RTP publishers replaying pre-encoded audio over UDP, paced in real time.

What an SFU's RTP forwarder or a PBX's external media sends: one audio stream per UDP port, RTP
packets of 20 ms (RFC 3550 header, own SSRC and sequence per stream, RTP timestamps on the codec's
clock). The audio is encoded once (Opus through PyAV's libopus, 48 kHz stereo as a browser sends it
through Janus or mediasoup; or G.711 mu-law at 8 kHz as a PBX sends it) and the packets are replayed,
so the generator costs a few ``sendto`` calls per 20 ms, not an encoder per stream.

As a script (used by ``samos bench soak --ingest rtp``, one process per group of publishers)::

    python -m samos.bench.rtp_load PORTS SECONDS [--first I] [--codec opus|pcmu] [--wav FILE]

sends to ``127.0.0.1:PORT`` for each of the comma-separated ``PORTS`` (publishers ``pub-I`` ..), prints
``ready`` once the packets are encoded, streams SECONDS of audio each, and prints one JSON line
``{"sent_seconds": {name: seconds}, "started": {name: t}}`` (``t``: ``time.monotonic()`` of the
stream's first packet, the same clock on one machine), as :mod:`samos.bench.webrtc_load` does.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

import av
import numpy as np

from samos.bench.webrtc_load import encode_opus, speech

PACKET_S = 0.02
CODECS = {"opus": (111, 48_000), "pcmu": (0, 8_000)}
"""Codec -> (RTP payload type, RTP clock rate): Opus on its dynamic type as browsers offer it, PCMU static."""


def encode_pcmu(audio48: np.ndarray) -> list[bytes]:
    """Mono float32 48 kHz -> one G.711 mu-law payload per 20 ms (160 bytes at 8 kHz)."""
    from samos.audio import resample

    pcm = (np.clip(resample(audio48, 48_000, 8_000), -1.0, 1.0) * 32767).astype(np.int16)
    pcm = np.pad(pcm, (0, -len(pcm) % 160))
    enc = av.CodecContext.create("pcm_mulaw", "w")
    enc.sample_rate, enc.format, enc.layout = 8_000, "s16", "mono"
    out = bytearray()
    for i in range(0, len(pcm), 160):
        frame = av.AudioFrame.from_ndarray(pcm[i : i + 160].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 8_000
        for p in enc.encode(frame):
            out += bytes(p)
    return [bytes(out[i : i + 160]) for i in range(0, len(out) - 159, 160)]


def payloads(codec: str, audio48: np.ndarray) -> list[bytes]:
    """20 ms payloads of ``audio48`` (mono float32, 48 kHz) in ``codec``."""
    if codec == "opus":
        return encode_opus(audio48)
    if codec == "pcmu":
        return encode_pcmu(audio48)
    raise ValueError(f"codec {codec!r}: use one of {', '.join(CODECS)}")


def rtp_packet(pt: int, seq: int, timestamp: int, ssrc: int, payload: bytes) -> bytes:
    """One RTP packet (version 2, no padding, extension, CSRCs or marker)."""
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


def send_streams(
    ports: list[int], seconds: float, codec: str, audio48: np.ndarray, *, first: int = 0
) -> dict[str, dict[str, float]]:
    """Every 20 ms one packet to each port, for ``seconds``; the packets loop over the audio. Prints
    ``ready`` before the first. Returns ``sent_seconds`` and ``started`` per stream name (``pub-I``)."""
    pt, clock = CODECS[codec]
    data = payloads(codec, audio48)
    step = round(clock * PACKET_S)
    total = max(1, round(seconds / PACKET_S))
    names = [f"pub-{first + k}" for k in range(len(ports))]
    ssrcs = [0x5A000000 + first + k for k in range(len(ports))]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    print("ready", flush=True)
    t0 = time.monotonic()
    sent = 0
    try:
        for i in range(total):
            delay = t0 + i * PACKET_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            payload = data[i % len(data)]
            for port, ssrc in zip(ports, ssrcs, strict=True):
                sock.sendto(rtp_packet(pt, i, i * step, ssrc, payload), ("127.0.0.1", port))
            sent = i + 1
    finally:
        sock.close()
    return {
        "sent_seconds": {n: sent * PACKET_S for n in names},
        "started": {n: t0 for n in names},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m samos.bench.rtp_load", description=__doc__.split("\n")[0])
    p.add_argument("ports", help="comma-separated UDP ports on 127.0.0.1, one per publisher")
    p.add_argument("seconds", type=float, help="audio each publisher sends, seconds")
    p.add_argument("--first", type=int, default=0, help="index of the first publisher's name (pub-I)")
    p.add_argument("--codec", choices=tuple(CODECS), default="opus", help="payload codec (default opus)")
    p.add_argument("--wav", default=None, help="audio to send (default: the bundled demo call)")
    args = p.parse_args(argv)
    ports = [int(x) for x in args.ports.split(",") if x]
    sent = send_streams(ports, args.seconds, args.codec, speech(args.wav), first=args.first)
    print(json.dumps(sent), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
