"""Bad input on the ingest endpoints: garbage and floods on an RTP port, fuzzed Twilio messages,
a telephony client killed mid-call, malformed WHIP offers, bad --rtp specs. Each is counted and
dropped or answered with a clear error; the monitor never crashes and a steady stream beside it
loses nothing."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from reliability_helpers import (
    MONITOR_CLI,
    MONITOR_TESTS,
    eventually,
    read_messages,
    running_monitor,
    seq_gaps,
    small_config,
    ws_url,
)
from rtp_peers import RtpSender, l16_payloads
from telephony_peers import l16le_frames, twilio_call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from samos.monitor.config import IngestConfig
from samos.monitor.http import SignallingLimits, build_http_app
from samos.monitor.ingest_http import CALLS
from samos.monitor.sources.rtp import RtpSource, RtpSpec
from samos.monitor.sources.webrtc import WebRTCOptions

pytestmark = pytest.mark.timeout(120)
RATE = 16_000
PACKET = 320


def speech16k(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    envelope = (np.sin(2 * np.pi * 4 * t) > 0).astype(np.float32)
    return (0.15 * rng.standard_normal(len(t)) * envelope).astype(np.float32)


async def http_app(monitor: Any, cfg: Any) -> tuple[web.AppRunner, str]:
    app = build_http_app(monitor, cfg, SignallingLimits(webrtc=WebRTCOptions(inactivity_timeout=1.5)))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


# ------------------------------------------------------------------------------------------------- RTP
async def test_garbage_and_floods_on_one_rtp_port_leave_another_stream_exact(scorer: Any) -> None:
    cfg = replace(small_config(), http=replace(small_config().http, enabled=False))
    async with running_monitor(cfg, scorer) as (monitor, _):
        target = await RtpSource.open(RtpSpec("127.0.0.1", 0, "target", codec="opus", idle=3.0))
        clean = await RtpSource.open(RtpSpec("127.0.0.1", 0, "clean", codec="l16", rate=RATE, idle=1.0))
        await monitor.add_source(target)
        await monitor.add_source(clean)
        rng = random.Random(7)
        attackers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
        sender = RtpSender(clean.local_address[1])
        payloads = l16_payloads(speech16k(2.0), PACKET)
        async with connect(ws_url(monitor)) as ws:
            reader = asyncio.create_task(
                read_messages(ws, lambda ms: sum(m["type"] == "stream_end" for m in ms) == 2, 60),
                name="t:read",
            )
            try:
                for i, p in enumerate(payloads):
                    sender.send(sender.packet(i, p, PACKET))
                    for a in attackers:  # 150 bad datagrams per 20 ms: random bytes and random RTP
                        for _ in range(50):
                            kind = rng.random()
                            if kind < 0.3:
                                data = rng.randbytes(rng.randint(0, 1500))
                            elif kind < 0.6:  # RTP-looking: version 2, random everything else
                                data = bytes(
                                    [0x80 | rng.randint(0, 15), rng.randint(0, 255)]
                                ) + rng.randbytes(rng.randint(10, 400))
                            else:
                                data = bytes([0x80, 96]) + rng.randbytes(10 + rng.randint(1, 200))
                            a.sendto(data, target.local_address)
                    await asyncio.sleep(0.02)
                messages = await reader
            finally:
                sender.close()
                for a in attackers:
                    a.close()
        got = [m for m in messages if m["type"] == "score" and m["stream"] == "clean"]
        assert got and sum(m["diagnostics"]["dropped_seconds"] for m in got) == 0
        end = next(m for m in messages if m["type"] == "stream_end" and m["stream"] == "clean")
        assert end["seconds"] == pytest.approx(2.0, abs=0.03) and end["reason"] == "ended"
        assert seq_gaps(messages) == 0
        # the attacked stream ended by itself (no packet accepted for idle s), not with an error
        assert (
            next(m for m in messages if m["type"] == "stream_end" and m["stream"] == "target")["reason"]
            == "ended"
        )
        assert clean.stats.lost_packets == 0 and clean.stats.packets == len(payloads)
        st = target.stats
        refused = st.malformed + st.rtcp + st.wrong_pt + st.other_ssrc + st.other_address + st.flood
        assert refused + st.packets > 1000  # counted, not crashed on
        assert st.flood > 0 and st.other_address > 0 and st.malformed > 0 and st.wrong_pt > 0


def test_bad_rtp_specs_exit_2_with_one_line(model_path: Any) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    try:
        for spec, words in [
            ("x=127.0.0.1:5004,codec=amr", "not supported"),
            ("x=127.0.0.1:5004,codec=l16", "needs rate"),
            ("x=127.0.0.1:notaport", "expected"),
            (f"x=127.0.0.1:{busy.getsockname()[1]}", "cannot listen"),
            ("x=/nonexistent/call.sdp", "cannot read"),
        ]:
            r = subprocess.run(
                [*MONITOR_CLI, "--rtp", spec, "--no-ws", "--model", str(model_path)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert r.returncode == 2, (spec, r.stderr)
            lines = [ln for ln in r.stderr.splitlines() if ln.startswith("monitor:") and "note:" not in ln]
            assert len(lines) == 1 and words in lines[0], (spec, r.stderr)
    finally:
        busy.close()


# ------------------------------------------------------------------------------------------ telephony
def mutations(message: str, rng: random.Random) -> list[str]:
    """Broken variants of one valid Twilio message: fields removed, mistyped, absurd."""
    base = json.loads(message)
    out = []
    for _ in range(12):
        m = copy.deepcopy(base)
        inner = m.get(m["event"]) if isinstance(m.get(m["event"]), dict) else m
        key = rng.choice(list(inner) or ["x"])
        choice = rng.random()
        if choice < 0.3:
            inner.pop(key, None)
        elif choice < 0.6:
            inner[key] = rng.choice([None, 12, -1, [], {}, "", "abc", 1e308, True])
        elif choice < 0.8:
            m[rng.choice(["event", "media", "start"])] = rng.choice([None, 5, "media", [1]])
        else:
            out.append(json.dumps(m)[: rng.randint(0, 40)])  # truncated
            continue
        out.append(json.dumps(m))
    return out


async def test_fuzzed_twilio_messages_are_dropped_and_a_good_call_beside_is_exact(scorer: Any) -> None:
    cfg = replace(small_config(), ingest=IngestConfig(telephony_inactivity_timeout=2.0))
    cfg = replace(cfg, http=replace(cfg.http, enabled=False))
    rng = random.Random(3)
    t = np.arange(8000 * 3) / 8000
    audio = (0.2 * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    good = twilio_call(audio, {"name": "good"})
    fuzz_source = twilio_call(audio[:8000], {"name": "fuzzed"})
    async with running_monitor(cfg, scorer) as (monitor, _):
        runner, base = await http_app(monitor, cfg)
        try:
            async with connect(ws_url(monitor, "streams=good")) as sub:
                reader = asyncio.create_task(
                    read_messages(sub, lambda ms: any(m["type"] == "stream_end" for m in ms), 60), name="t:r"
                )
                codes: list[int] = []

                async def fuzz() -> None:
                    sent = 0
                    while sent < 400:
                        async with connect(base.replace("http", "ws") + "/twilio") as ws:
                            try:
                                for message in fuzz_source:
                                    for bad in mutations(message, rng):
                                        await ws.send(bad)
                                        sent += 1
                                    await ws.send(message)
                                    await asyncio.sleep(0)
                                await ws.close()
                            except ConnectionClosed as e:
                                codes.append(e.rcvd.code if e.rcvd else -1)

                fuzzer = asyncio.create_task(fuzz(), name="t:fuzz")
                async with connect(base.replace("http", "ws") + "/twilio") as call:
                    for message in good:
                        await call.send(message)
                        await asyncio.sleep(0.005)
                await fuzzer
                messages = await reader
        finally:
            await runner.cleanup()
    end = next(m for m in messages if m["type"] == "stream_end")
    assert end["seconds"] == pytest.approx(3.0, abs=0.03)
    assert sum(m["diagnostics"]["dropped_seconds"] for m in messages if m["type"] == "score") == 0
    assert seq_gaps(messages) == 0
    assert all(code in (1000, 1007) for code in codes), codes


KILLED_CLIENT = """
import asyncio, sys, numpy as np
from websockets.asyncio.client import connect
async def main():
    async with connect(sys.argv[1]) as ws:
        print("connected", flush=True)
        frame = (np.sin(np.arange(320) * 0.1) * 8000).astype("<i2").tobytes()
        while True:
            await ws.send(frame)
            await asyncio.sleep(0.02)
asyncio.run(main())
"""


async def test_a_pcm_client_killed_mid_call_is_ended_and_another_goes_on(scorer: Any) -> None:
    cfg = replace(small_config(), ingest=IngestConfig(telephony_inactivity_timeout=3.0))
    cfg = replace(cfg, http=replace(cfg.http, enabled=False))
    async with running_monitor(cfg, scorer) as (monitor, _):
        runner, base = await http_app(monitor, cfg)
        ws_base = base.replace("http", "ws")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            KILLED_CLIENT,
            f"{ws_base}/pcm?rate=16000&name=doomed",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(MONITOR_TESTS)},
        )
        try:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), 30)).startswith(b"connected")
            async with (
                connect(f"{ws_base}/pcm?rate=16000&name=steady") as steady,
                connect(ws_url(monitor)) as sub,
            ):
                frames = l16le_frames(speech16k(4.0, seed=1), RATE)

                async def stream() -> None:
                    for f in frames:
                        await steady.send(f)
                        await asyncio.sleep(0.02)

                sender = asyncio.create_task(stream(), name="t:steady")
                await read_messages(
                    sub, lambda ms: any(m["stream"] == "doomed" and m["type"] == "score" for m in ms)
                )
                os.kill(proc.pid, signal.SIGKILL)  # no close frame: the TCP connection just dies
                msgs = await read_messages(
                    sub, lambda ms: any(m["type"] == "stream_end" and m["stream"] == "doomed" for m in ms), 30
                )
                await sender
            assert await eventually(lambda: "steady" not in monitor.streams, 10)
            assert seq_gaps(msgs) == 0
            assert await eventually(lambda: not runner.app[CALLS].sockets, 10)
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            await runner.cleanup()


# ------------------------------------------------------------------------------------------------ WHIP
SDP_HEAD = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
BAD_OFFERS = [
    ("hello", "v=0"),
    ("v=0\r\n", "no media"),
    (SDP_HEAD + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\n", "no audio"),
    (SDP_HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n", "Opus"),
    (SDP_HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n", ""),
    ("v=0\r\n" + "m=audio x y z\r\n" * 3, ""),
]


async def test_bad_whip_offers_get_400_and_the_app_stays_up(scorer: Any) -> None:
    cfg = replace(small_config(), http=replace(small_config().http, enabled=False))
    async with running_monitor(cfg, scorer) as (monitor, _):
        runner, base = await http_app(monitor, cfg)
        try:
            async with aiohttp.ClientSession() as http:
                headers = {"Content-Type": "application/sdp"}
                for sdp, words in BAD_OFFERS:
                    async with http.post(base + "/whip", data=sdp, headers=headers) as r:
                        assert r.status == 400, (sdp[:40], await r.text())
                        assert words in (await r.json())["error"]
                async with http.get(base + "/healthz") as r:
                    assert r.status == 200
                assert not monitor.streams
        finally:
            await runner.cleanup()
