"""Measure what RTP ingest costs one monitor process: N RTP streams for S seconds (not the soak).

A sender process replays pre-encoded 20 ms packets (Opus at 48 kHz through libopus, or G.711 mu-law)
to N UDP ports in real time; this process runs a Monitor (the level model: the pipeline's cost, not a
network's) with one RtpSource per port and reports, as JSON, process CPU per stream-second, resident
memory when the streams started and ended, the windows each stream got, and the packets the sources
lost or refused.

    PYTHONPATH=. .venv/bin/python scripts/measure_rtp_ingest.py --streams 8 --seconds 20 --codec opus
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def encoded_packets(codec: str, seconds: float) -> tuple[list[bytes], int]:
    """20 ms payloads of speech-like audio and the RTP timestamp step per packet."""
    import av

    rate = 48_000 if codec == "opus" else 8_000
    n = int(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(0)
    audio = 0.15 * rng.standard_normal(n) * (np.sin(2 * np.pi * 4 * t) > 0)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    name, layout = ("libopus", "mono") if codec == "opus" else ("pcm_mulaw", "mono")
    ctx: Any = av.CodecContext.create(name, "w")
    ctx.sample_rate, ctx.format, ctx.layout = rate, "s16", layout
    step = rate // 50
    out: list[bytes] = []
    for i in range(0, n - step + 1, step):
        frame = av.AudioFrame.from_ndarray(pcm[i : i + step].reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = rate
        out += [bytes(p) for p in ctx.encode(frame)]
    return out, step


def rss_mb() -> float:
    """This process's resident set size, MB (Linux)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def send(ports: list[int], codec: str, seconds: float) -> None:
    """The sender process: every 20 ms one packet to each port (own SSRC and sequence per stream)."""
    from aiortc.rtp import RtpPacket

    payloads, step = encoded_packets(codec, seconds)
    pt = 111 if codec == "opus" else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.monotonic()
    for i, payload in enumerate(payloads):
        delay = t0 + 0.02 * i - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for k, port in enumerate(ports):
            packet = RtpPacket(pt, 0, i & 0xFFFF, (i * step) & 0xFFFFFFFF, 1000 + k, payload)
            sock.sendto(packet.serialize(), ("127.0.0.1", port))
    sock.close()


async def measure(streams: int, seconds: float, codec: str) -> dict:
    from samos.bench.level_model import make_level_model
    from samos.monitor.app import Monitor
    from samos.monitor.config import MonitorConfig, WebsocketConfig
    from samos.monitor.sources.rtp import RtpSource, RtpSpec
    from samos.runtime.scorer import Scorer

    model = make_level_model(Path(tempfile.mkdtemp()) / "level.onnx")
    monitor = Monitor(
        MonitorConfig(ws=WebsocketConfig(enabled=False)), Scorer(model, providers=("cpu",), threads=1)
    )
    await monitor.start()
    sources = [
        await RtpSource.open(RtpSpec("127.0.0.1", 0, f"rtp{k}", codec=codec, idle=1.0))
        for k in range(streams)
    ]
    for s in sources:
        await monitor.add_source(s)
    ports = [s.local_address[1] for s in sources]
    sender = multiprocessing.get_context("spawn").Process(target=send, args=(ports, codec, seconds))
    cpu0, wall0, rss0 = time.process_time(), time.monotonic(), rss_mb()
    sender.start()
    await asyncio.to_thread(sender.join)
    await monitor.wait_idle()
    cpu, wall, rss1 = time.process_time() - cpu0, time.monotonic() - wall0, rss_mb()
    windows = {
        name: int(
            sum(v.value for v in m.samples if v.name.endswith("_total") and v.labels.get("stream") == name)
        )
        for m in monitor.metrics.collect()
        if m.name == "samos_windows"
        for name in [s.name for s in sources]
    }
    await monitor.stop()
    stats = [s.stats for s in sources]
    return {
        "streams": streams,
        "seconds": seconds,
        "codec": codec,
        "wall_s": round(wall, 2),
        "cpu_s_per_stream_s": round(cpu / (streams * seconds), 4),
        "rss_mb_start": round(rss0, 1),
        "rss_mb_end": round(rss1, 1),
        "windows_per_stream": sorted(set(windows.values())),
        "packets_received": sum(s.packets for s in stats),
        "packets_lost": sum(s.lost_packets for s in stats),
        "packets_refused": sum(s.late + s.duplicate + s.flood + s.malformed + s.other_address for s in stats),
        "decode_errors": sum(s.decode_errors for s in stats),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--codec", choices=("opus", "pcmu"), default="opus")
    args = p.parse_args()
    print(json.dumps(asyncio.run(measure(args.streams, args.seconds, args.codec))))


if __name__ == "__main__":
    main()
