"""RTP senders for the ingest tests: a packet-exact Python sender, a lossy/reordering UDP relay on
loopback, and Debian's ffmpeg streaming a file as RTP (the tests that need it skip without it).

Imported as ``from rtp_peers import ...`` (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import soundfile as sf
from aiortc.rtp import RtpPacket

FFMPEG = shutil.which("ffmpeg")
NO_FFMPEG = "Debian's ffmpeg is not installed (scripts/setup.sh dev installs it)"


class RtpSender:
    """Builds and sends RTP packets from Python to ``port`` on 127.0.0.1 (one UDP socket)."""

    def __init__(self, port: int, pt: int = 96, ssrc: int = 0x1234, seq0: int = 0, ts0: int = 0) -> None:
        self.port, self.pt, self.ssrc, self.seq0, self.ts0 = port, pt, ssrc, seq0, ts0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def packet(
        self, index: int, payload: bytes, samples_per_packet: int, ts_index: int | None = None, **over: int
    ) -> bytes:
        """Packet ``index`` of the stream: seq ``seq0 + index``, timestamp ``ts0 + ts_index * samples``
        (``ts_index`` defaults to ``index``; another one makes a timestamp gap, e.g. DTX)."""
        ts_index = index if ts_index is None else ts_index
        p = RtpPacket(
            payload_type=over.get("pt", self.pt),
            sequence_number=(self.seq0 + index) & 0xFFFF,
            timestamp=(self.ts0 + ts_index * samples_per_packet) & 0xFFFFFFFF,
            ssrc=over.get("ssrc", self.ssrc),
            payload=payload,
        )
        return p.serialize()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def close(self) -> None:
        self.sock.close()


def l16_payloads(audio: np.ndarray, samples: int) -> list[bytes]:
    """Mono float32 -> big-endian L16 payloads of ``samples`` samples each (the last one padded)."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    pad = (-len(pcm)) % samples
    pcm = np.concatenate([pcm, np.zeros(pad, np.int16)]).astype(">i2")  # network byte order
    return [pcm[i : i + samples].tobytes() for i in range(0, len(pcm), samples)]


class Relay(asyncio.DatagramProtocol):
    """A UDP relay on 127.0.0.1 that forwards RTP to ``target`` and misbehaves like a network.

    ``policy(index)`` for each RTP datagram (0 = first): ``"send"``, ``"drop"`` or ``"hold"`` (sent
    right after the next datagram: a swap). RTCP passes. ``dropped`` lists the sequence numbers lost.
    ``rewrite(index, datagram)``: the datagrams to send in its place (from the same address).
    """

    def __init__(
        self,
        target: tuple[str, int],
        policy: Callable[[int], str],
        rewrite: Callable[[int, bytes], list[bytes]] | None = None,
    ) -> None:
        self.target, self.policy, self.rewrite = target, policy, rewrite
        self.count = 0
        self.dropped: list[int] = []
        self.swapped = 0
        self._held: bytes | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        assert self.transport is not None
        if len(data) >= 2 and 192 <= data[1] <= 223:
            self.transport.sendto(data, self.target)
            return
        action = self.policy(self.count)
        if self.rewrite is not None:
            *extra, data = self.rewrite(self.count, data)
            for datagram in extra:
                self.transport.sendto(datagram, self.target)
        self.count += 1
        if action == "drop":
            self.dropped.append(int.from_bytes(data[2:4], "big"))
            return
        if action == "hold" and self._held is None:
            self._held = data
            return
        self.transport.sendto(data, self.target)
        if self._held is not None:
            self.transport.sendto(self._held, self.target)
            self._held = None
            self.swapped += 1

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


async def start_relay(
    target: tuple[str, int],
    policy: Callable[[int], str],
    rewrite: Callable[[int, bytes], list[bytes]] | None = None,
) -> Relay:
    loop = asyncio.get_running_loop()
    _, relay = await loop.create_datagram_endpoint(
        lambda: Relay(target, policy, rewrite), local_addr=("127.0.0.1", 0)
    )
    return relay


def lossy(drop: Iterable[int] = (), hold: Iterable[int] = ()) -> Callable[[int], str]:
    """A relay policy: drop the packets whose index is in ``drop``, swap those in ``hold`` with the next."""
    drop_set, hold_set = set(drop), set(hold)
    return lambda i: "drop" if i in drop_set else ("hold" if i in hold_set else "send")


def write_wav(path: Path, audio: np.ndarray, rate: int = 48_000) -> Path:
    sf.write(str(path), audio, rate, subtype="PCM_16")
    return path


CODEC_ARGS = {
    "opus": ["-c:a", "libopus", "-ar", "48000", "-ac", "2", "-b:a", "48k", "-application", "voip"],
    # 20 ms packets as a PBX sends them (ffmpeg packs whole input frames otherwise)
    "pcmu": ["-af", "aresample=8000,asetnsamples=n=160:p=0", "-c:a", "pcm_mulaw", "-ac", "1"],
    "pcma": ["-af", "aresample=8000,asetnsamples=n=160:p=0", "-c:a", "pcm_alaw", "-ac", "1"],
    "g722": ["-af", "aresample=16000,asetnsamples=n=320:p=0", "-c:a", "g722", "-ac", "1"],
}


def ffmpeg_rtp(wav: Path, port: int, codec: str, *extra: str, rtcp_mux: bool = False) -> subprocess.Popen:
    """Debian's ffmpeg sending ``wav`` in real time (``-re``) as RTP to 127.0.0.1:``port`` (``rtcp_mux``:
    its RTCP to the same port, as a PlainTransport with rtcpMux sends it)."""
    assert FFMPEG is not None, NO_FFMPEG
    cmd = [
        FFMPEG,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-i",
        str(wav),
        *CODEC_ARGS[codec],
        *extra,
        "-f",
        "rtp",
        f"rtp://127.0.0.1:{port}" + (f"?rtcpport={port}" if rtcp_mux else ""),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate a helper process we started (by its own handle) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


GST_LAUNCH = shutil.which("gst-launch-1.0")
NO_GST = "Debian's GStreamer (gstreamer1.0-tools, -plugins-base, -plugins-good) is not installed"


def gst_rtp(wav: Path, port: int, pt: int = 111) -> subprocess.Popen:
    """docs/INGEST.md's GStreamer recipe: a wav as Opus RTP to 127.0.0.1:``port`` (udpsink paces it)."""
    assert GST_LAUNCH is not None, NO_GST
    pipeline = (
        f"filesrc location={wav} ! wavparse ! audioconvert ! audioresample ! opusenc ! "
        f"rtpopuspay pt={pt} ! udpsink host=127.0.0.1 port={port}"
    )
    return subprocess.Popen(
        [GST_LAUNCH, "-q", *pipeline.split()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
