"""Soak helper, run as a script: N real aiortc WebRTC publishers streaming speech to a monitor.

``python soak_publishers.py BASE_URL N SECONDS``: connects N publishers named ``pub-0`` ...,
prints ``ready`` once all are connected, streams SECONDS of audio each (paced in real time), closes
them and prints one JSON line ``{"sent_seconds": {name: seconds}}``. Kept out of the test process
so that Opus encoding does not share the subscribers' event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitor"))
from webrtc_peers import FRAME, RATE, ArrayTrack, publish, speech_clip  # noqa: E402


async def main(base: str, n: int, seconds: float) -> None:
    clip = speech_clip(seconds)
    async with aiohttp.ClientSession() as http:
        tracks = [ArrayTrack(clip) for _ in range(n)]
        peers = []
        for i, track in enumerate(tracks):  # one at a time: signalling is not what is measured
            pc, answer = await publish(http, base, track, name=f"pub-{i}")
            peers.append((pc, answer["name"], track))
        print("ready", flush=True)
        while any(t.readyState == "live" for t in tracks):  # noqa: ASYNC110 - aiortc tracks have no end event
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        sent = {name: t.sent * FRAME / RATE for _, name, t in peers}
        for pc, _, _ in peers:
            await pc.close()
    print(json.dumps({"sent_seconds": sent}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
