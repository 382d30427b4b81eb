"""Telephony-websocket load for the monitor: Twilio Media Streams or raw PCM calls, paced in real time.

Each publisher is one websocket client of the monitor's HTTP server that follows a published format
message by message:

- ``twilio`` (``GET /twilio``): ``connected``, ``start`` (``mediaFormat`` audio/x-mulaw 8000 Hz mono,
  the stream name in ``customParameters``), then one ``media`` per 20 ms (160 bytes of mu-law in
  base64, ``timestamp`` in ms and ``chunk`` as strings, as Twilio sends them), then ``stop``;
- ``pcm`` (``GET /pcm?rate=16000``): one binary frame of 16-bit little-endian mono PCM per 20 ms, as
  FreeSWITCH's mod_audio_fork sends it; the call ends when the websocket closes.

The audio is encoded once; the messages are replayed in a loop over it. As a script (used by
``samos bench soak --ingest twilio|pcm``, one process per group of publishers)::

    python -m samos.bench.telephony_load BASE_URL KIND N SECONDS [--first I] [--token T] [--wav FILE]

connects publishers ``pub-I`` .. ``pub-{I+N-1}``, prints ``ready``, streams SECONDS of audio each, ends
the calls and prints one JSON line ``{"sent_seconds": {name: seconds}, "started": {name: t}}``
(``t``: ``time.monotonic()`` of the call's first audio message), as :mod:`samos.bench.webrtc_load`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from typing import Any
from urllib.parse import urlencode

import numpy as np

from samos.bench.rtp_load import encode_pcmu
from samos.bench.webrtc_load import add_publisher_arguments, speech

PACKET_S = 0.02
PCM_RATE = 16_000
KINDS = ("twilio", "pcm")


def pcm_frames(audio48: np.ndarray, rate: int = PCM_RATE) -> list[bytes]:
    """Mono float32 48 kHz -> 20 ms frames of 16-bit little-endian PCM at ``rate``."""
    from samos.audio import resample

    pcm = (np.clip(resample(audio48, 48_000, rate), -1.0, 1.0) * 32767).astype("<i2")
    step = round(rate * PACKET_S)
    pcm = np.pad(pcm, (0, -len(pcm) % step))
    return [pcm[i : i + step].tobytes() for i in range(0, len(pcm), step)]


def twilio_media(sid: str, seq: int, chunk: int, payload_b64: str) -> str:
    """One Twilio ``media`` message: chunk ``chunk`` (1-based), 20 ms each, inbound track."""
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "media": {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(round((chunk - 1) * PACKET_S * 1000)),
                "payload": payload_b64,
            },
            "streamSid": sid,
        }
    )


def twilio_start(sid: str, name: str, token: str | None) -> list[str]:
    """The ``connected`` and ``start`` messages of a call; ``name``/``token`` as ``<Parameter>``s."""
    params = {"name": name, **({"token": token} if token else {})}
    return [
        json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        json.dumps(
            {
                "event": "start",
                "sequenceNumber": "1",
                "start": {
                    "accountSid": "AC" + "0" * 32,
                    "streamSid": sid,
                    "callSid": "CA" + sid[2:],
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": params,
                },
                "streamSid": sid,
            }
        ),
    ]


class Call:
    """One publisher's websocket and what it has sent."""

    def __init__(self, kind: str, name: str, ws: Any, sid: str) -> None:
        self.kind, self.name, self.ws, self.sid = kind, name, ws, sid
        self.sent = 0
        self.started: float | None = None


async def run_publishers(
    base_url: str,
    kind: str,
    n: int,
    seconds: float,
    audio48: np.ndarray,
    *,
    first: int = 0,
    token: str | None = None,
) -> dict[str, dict[str, float]]:
    """Connect ``n`` calls of ``kind``, print ``ready``, stream ``seconds`` each (all paced by one
    20 ms tick), end them. Returns ``sent_seconds`` and ``started`` per stream name."""
    from websockets.asyncio.client import connect

    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: use one of {', '.join(KINDS)}")
    ws_base = "ws" + base_url.removeprefix("http")
    if kind == "twilio":
        messages: list[Any] = [base64.b64encode(p).decode() for p in encode_pcmu(audio48)]
    else:
        messages = pcm_frames(audio48)
    total = max(1, round(seconds / PACKET_S))
    calls: list[Call] = []
    try:
        for i in range(first, first + n):
            name = f"pub-{i}"
            if kind == "twilio":
                url = f"{ws_base}/twilio"  # Twilio's stream URL has no query: name and token in start
            else:
                query = {"rate": PCM_RATE, "name": name, **({"token": token} if token else {})}
                url = f"{ws_base}/pcm?{urlencode(query)}"
            ws = await connect(url, open_timeout=60, compression=None, max_queue=None)
            call = Call(kind, name, ws, f"MZ{i:032x}")
            calls.append(call)
            if kind == "twilio":
                for m in twilio_start(call.sid, name, token):
                    await ws.send(m)
        print("ready", flush=True)
        t0 = time.monotonic()
        for k in range(total):
            delay = t0 + k * PACKET_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            m = messages[k % len(messages)]
            for c in calls:
                if c.started is None:
                    c.started = time.monotonic()
                await c.ws.send(twilio_media(c.sid, k + 2, k + 1, m) if kind == "twilio" else m)
                c.sent = k + 1
        for c in calls:
            if kind == "twilio":
                stop = {
                    "event": "stop",
                    "sequenceNumber": str(total + 2),
                    "streamSid": c.sid,
                    "stop": {"accountSid": "AC" + "0" * 32, "callSid": "CA" + c.sid[2:]},
                }
                await c.ws.send(json.dumps(stop))
    finally:
        for c in calls:
            await c.ws.close()
    return {
        "sent_seconds": {c.name: c.sent * PACKET_S for c in calls},
        "started": {c.name: c.started for c in calls if c.started is not None},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m samos.bench.telephony_load", description=__doc__.split("\n")[0]
    )
    p.add_argument("base_url", help="the monitor's HTTP base URL (http://HOST:PORT)")
    p.add_argument("kind", choices=KINDS, help="twilio (Media Streams JSON) or pcm (binary L16 frames)")
    add_publisher_arguments(p)
    args = p.parse_args(argv)
    sent = asyncio.run(
        run_publishers(
            args.base_url,
            args.kind,
            args.n,
            args.seconds,
            speech(args.wav),
            first=args.first,
            token=args.token,
        )
    )
    print(json.dumps(sent), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
