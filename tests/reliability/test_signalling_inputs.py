"""Bad WebRTC publishers through the real ``/offer`` endpoint: malformed SDP, huge bodies, wrong
content types, offers without audio, a peer that never sends media and one that vanishes mid-call
(its process is killed). Each gets a clear HTTP error or a ``stream_end``; a steady publisher
streaming meanwhile loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from reliability_helpers import (
    MONITOR_TESTS,
    eventually,
    read_messages,
    running_monitor,
    seq_gaps,
    small_config,
    ws_url,
)
from webrtc_peers import ArrayTrack, offer_for, publish, speech_clip
from websockets.asyncio.client import connect

from samos.monitor.http import PEERS, SignallingLimits, build_http_app
from samos.monitor.sources.webrtc import WebRTCOptions

pytestmark = pytest.mark.timeout(180)
FAST = WebRTCOptions(connect_timeout=3.0, inactivity_timeout=1.5, close_timeout=3.0)


@contextlib.asynccontextmanager
async def signalling(scorer: Any) -> AsyncIterator[tuple[Any, str, web.Application]]:
    """A Monitor plus its HTTP app with short WebRTC timeouts; yields (monitor, base URL, app)."""
    from dataclasses import replace

    cfg = small_config()
    cfg = replace(cfg, http=replace(cfg.http, enabled=False))
    async with running_monitor(cfg, scorer) as (monitor, _):
        app = build_http_app(monitor, cfg, SignallingLimits(max_body_bytes=64 * 1024, webrtc=FAST))
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield monitor, f"http://127.0.0.1:{runner.addresses[0][1]}", app
        finally:
            await runner.cleanup()


SDP_HEAD = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
MALFORMED = [
    ("hello", "must start with 'v=0'"),
    ("v=0\r\n", "no media sections"),
    (
        SDP_HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n",
        "ICE",
    ),
    (SDP_HEAD + "m=audio notaport RTP/AVP 0\r\n", "malformed SDP"),
    (SDP_HEAD + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", "sends no audio"),
    (SDP_HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n", "no Opus"),
    ("v=0\r\n" + "a=x\r\n" * 3000, "no media sections"),
]


async def test_bad_offers_get_clear_http_errors_while_a_steady_stream_goes_on(scorer: Any) -> None:
    async with signalling(scorer) as (monitor, base, app), aiohttp.ClientSession() as http:
        steady, answer = await publish(http, base, ArrayTrack(speech_clip(60.0)), name="steady")
        try:
            async with connect(ws_url(monitor, "streams=steady")) as ws:
                await read_messages(ws, lambda ms: any(m["type"] == "score" for m in ms))
                results: list[tuple[str, int, str]] = []

                async def post(what: str, **kw: Any) -> None:
                    async with http.post(f"{base}/offer", **kw) as r:
                        body = await r.json() if r.content_type == "application/json" else {}
                        results.append((what, r.status, str(body.get("error", ""))))

                for sdp, _ in MALFORMED:
                    await post(sdp[:20], json={"sdp": sdp, "type": "offer"})
                await post("answer type", json={"sdp": SDP_HEAD, "type": "answer"})
                await post("no sdp field", json={"type": "offer"})
                await post("json list", data=b"[1,2]", headers={"Content-Type": "application/json"})
                await post("invalid json", data=b"{sdp:", headers={"Content-Type": "application/json"})
                await post("text/plain", data=b"v=0", headers={"Content-Type": "text/plain"})
                await post("form", data={"sdp": "v=0"})
                await post("huge body", data=b"x" * (8 << 20), headers={"Content-Type": "application/json"})

                async def chunks() -> AsyncIterator[bytes]:
                    for _ in range(200):
                        yield b"y" * 8192

                await post("huge chunked body", data=chunks(), headers={"Content-Type": "application/json"})
                await post("bad name", json={"sdp": "v=0", "type": "offer", "name": "../etc/passwd"})
                video_only = await offer_for(None, video=True)
                await post("video only", json={"sdp": video_only.localDescription.sdp, "type": "offer"})
                await video_only.close()

                expected = [
                    *(p for _, p in MALFORMED),
                    *("type 'offer'", "string fields", "JSON object", "valid JSON", "Content-Type"),
                    *("Content-Type", "too large", "too large", "invalid stream name", "sends no audio"),
                ]
                codes = [400] * (len(MALFORMED) + 4) + [415, 415, 413, 413, 400, 400]
                for (what, status, error), phrase, code in zip(results, expected, codes, strict=True):
                    assert status == code and phrase in error, (what, status, error)
                print(f"\n{len(results)} bad offers refused with 4xx and a message")
                got = await read_messages(ws, lambda ms: sum(m["type"] == "score" for m in ms) >= 4)
                assert seq_gaps(got) == 0 and not any(m["type"] == "stream_end" for m in got)
            assert set(monitor.streams) == {answer["name"]} and len(app[PEERS].sources) == 1
        finally:
            await steady.close()


async def test_a_peer_that_never_sends_media_is_ended(scorer: Any) -> None:
    async with signalling(scorer) as (monitor, base, app), aiohttp.ClientSession() as http:
        mute, answer = await publish(http, base, ArrayTrack(speech_clip(0.0), end="hang"), name="mute")
        try:
            async with connect(ws_url(monitor, "streams=mute")) as ws:
                msgs = await read_messages(
                    ws, lambda ms: any(m["type"] == "stream_end" for m in ms), timeout=30
                )
            end = msgs[-1]
            assert end["stream"] == "mute" and end["windows"] == 0
            assert await eventually(lambda: not app[PEERS].sources and not monitor.streams)
        finally:
            await mute.close()


PUBLISHER = r"""
import asyncio, sys
import aiohttp
sys.path.insert(0, sys.argv[2])
from webrtc_peers import ArrayTrack, publish, speech_clip
async def main():
    async with aiohttp.ClientSession() as http:
        pc, answer = await publish(http, sys.argv[1], ArrayTrack(speech_clip(120.0)), name="doomed")
        print("connected", answer["name"], flush=True)
        await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_a_peer_that_vanishes_mid_call_is_ended_and_others_go_on(scorer: Any) -> None:
    async with signalling(scorer) as (monitor, base, app), aiohttp.ClientSession() as http:
        steady, _ = await publish(http, base, ArrayTrack(speech_clip(60.0)), name="steady")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PUBLISHER, base, str(MONITOR_TESTS), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line.startswith("connected doomed"), line
            async with connect(ws_url(monitor)) as ws:
                await read_messages(
                    ws, lambda ms: sum(m["type"] == "score" and m["stream"] == "doomed" for m in ms) >= 2
                )
                os.kill(proc.pid, signal.SIGKILL)  # no BYE, no DTLS close: the peer is just gone
                msgs = await read_messages(
                    ws, lambda ms: any(m["type"] == "stream_end" and m["stream"] == "doomed" for m in ms), 30
                )
                msgs += await read_messages(ws, lambda ms: sum(m["stream"] == "steady" for m in ms) >= 4)
            end = next(m for m in msgs if m["type"] == "stream_end")
            assert end["reason"] == "ended" and end["windows"] >= 2
            assert seq_gaps(msgs) == 0
            assert await eventually(
                lambda: set(app[PEERS].sources) == {"steady"} and set(monitor.streams) == {"steady"}
            )
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            await steady.close()
