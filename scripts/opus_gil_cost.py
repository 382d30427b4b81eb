#!/usr/bin/env python
"""What releasing the GIL around every libopus call costs the monitor's decoding thread.

The batched WebRTC hand-off (``samos.monitor.sources.handoff``) decodes every peer's Opus packets
in one thread, a few packets per peer every 50 ms, through ctypes. ``ctypes.CDLL`` releases the GIL
around each call and takes it back after; ``ctypes.PyDLL`` (what ``opus_plc.load_libopus`` opens)
keeps it. A decode takes about 40 us; when another thread wants the GIL (the monitor's event loop),
every take-back waits for it and hands it over again.

This times the hand-off's own path (``_Receiver.take``: queue, ``decode_blocks``, mono blocks) over
32 receivers, 3 packets each per round, with the bundled demo call encoded as the soak's publishers
send it (``samos.bench.webrtc_load.encode_opus``), the decoding thread's CPU time per packet:
alone, and with a busy Python thread beside it, for the library opened both ways, side by side.

    .venv/bin/python scripts/opus_gil_cost.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import queue
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from samos.audio import load_audio, resample, to_mono
from samos.bench.webrtc_load import encode_opus
from samos.monitor.sources import handoff, opus_plc

DEMO = Path(__file__).resolve().parents[1] / "samos" / "assets" / "demo_call_48k.flac"
RECEIVERS, PER_ROUND = 32, 3


def cpu_per_packet(lib: ctypes.CDLL, packets: list[bytes], rounds: int, busy: bool) -> float:
    """Decoding thread CPU (us) per packet through ``_Receiver.take`` with ``lib`` as libopus."""
    codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
    loop = asyncio.new_event_loop()
    receivers = [
        handoff._Receiver(loop, queue.SimpleQueue(), asyncio.Queue(), threading.Event())
        for _ in range(RECEIVERS)
    ]
    stop = threading.Event()

    def spin() -> None:  # pure Python work that wants the GIL all the time, as a busy event loop does
        while not stop.is_set():
            sum(range(1000))

    other = threading.Thread(target=spin, daemon=True)
    if busy:
        other.start()
    n, t0 = 0, time.thread_time()
    for k in range(rounds):
        for r in receivers:
            for j in range(PER_ROUND):
                i = (k * PER_ROUND + j) % len(packets)
                r.input_q.put((codec, SimpleNamespace(data=packets[i], timestamp=960 * (k * PER_ROUND + j))))
            if r.decoder is None:  # the first take builds the decoder: give it ``lib``
                r.take()
                r.decoder._lib = lib
                continue
            r.take()
            n += PER_ROUND
    cpu = time.thread_time() - t0
    stop.set()
    if busy:
        other.join()
    loop.close()
    return cpu / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200, help="rounds of 3 packets for each of 32 receivers")
    args = ap.parse_args()
    path = opus_plc.libopus_path()
    if path is None:
        ap.error("no libopus here")
    x, rate = load_audio(DEMO)
    packets = encode_opus(resample(to_mono(x), rate, 48_000).astype(np.float32))
    libs = {
        "CDLL (releases the GIL)": opus_plc.open_libopus(path, keep_gil=False),
        "PyDLL (keeps it: samos)": opus_plc.open_libopus(path, keep_gil=True),
    }
    print(f"libopus {path}; {RECEIVERS} receivers x {PER_ROUND} packets a round, {args.rounds} rounds")
    print(f"{'library opened as':26} {'alone (us/packet)':>18} {'busy thread beside (us/packet)':>31}")
    for name, lib in libs.items():
        alone = cpu_per_packet(lib, packets, args.rounds, busy=False)
        beside = cpu_per_packet(lib, packets, args.rounds, busy=True)
        print(f"{name:26} {alone:18.1f} {beside:31.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
