"""Telephony websockets and WHIP through the real aiohttp app into a running Monitor (tiny ONNX model,
real runtime): clients follow each published format message by message (Twilio Media Streams,
mod_audio_fork, chan_websocket, RFC 9725 WHIP with aiortc as the client), scores read back from the
monitor's websocket; bad input gets the documented refusal, never disturbs another call."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import numpy as np
import pytest
import soxr
from aiohttp import web
from telephony_peers import (
    asterisk_media_start,
    l16le_frames,
    mulaw,
    twilio_call,
    twilio_connected,
    twilio_media,
    twilio_start,
)
from test_http import eventually, monitor_config, read_until, scores, tasks_left, ws_url
from webrtc_peers import ArrayTrack, offer_for, speech_clip
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from samos.monitor.app import Monitor
from samos.monitor.config import HttpConfig, IngestConfig
from samos.monitor.http import SignallingLimits, build_http_app
from samos.monitor.ingest_http import CALLS, WHIP_SESSIONS
from samos.monitor.source import AudioChunk
from samos.monitor.sources.webrtc import WebRTCOptions

pytestmark = pytest.mark.timeout(60)
TOKEN = "s3cret-token"
FAST = WebRTCOptions(connect_timeout=10.0, inactivity_timeout=1.5, close_timeout=3.0)


@contextlib.asynccontextmanager
async def running(
    scorer: Any, token: str | None = None, **ingest: Any
) -> AsyncIterator[tuple[Monitor, str, web.Application]]:
    """A started Monitor plus its HTTP app (ingest routes included) on 127.0.0.1; yields (monitor,
    http base URL, app)."""
    cfg = monitor_config(token)
    cfg = replace(cfg, ingest=IngestConfig(**{"telephony_inactivity_timeout": 2.0, **ingest}))
    monitor = Monitor(cfg, scorer)
    await monitor.start()
    app = build_http_app(monitor, cfg, SignallingLimits(webrtc=FAST))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield monitor, f"http://127.0.0.1:{runner.addresses[0][1]}", app
    finally:
        await runner.cleanup()
        await monitor.stop()


def speech8k(seconds: float) -> np.ndarray:
    return soxr.resample(speech_clip(seconds), 48_000, 8_000).astype(np.float32)


def speech16k(seconds: float) -> np.ndarray:
    return soxr.resample(speech_clip(seconds), 48_000, 16_000).astype(np.float32)


def ended(stream: str) -> Any:
    return lambda ms: any(m["type"] == "stream_end" and m["stream"] == stream for m in ms)


async def subscribe_until_end(
    monitor: Monitor, stream: str, send: Any, token: str | None = None
) -> list[dict]:
    """Subscribe to ``stream`` (before it exists), run ``send()``, return messages up to its stream_end."""
    url = ws_url(monitor, stream, token)
    reader = asyncio.create_task(read_until(url, ended(stream), 30), name="test:read")
    await asyncio.sleep(0.2)  # subscribed before the call starts
    await send()
    return await reader


def ws(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


# ---------------------------------------------------------------------------------------------- Twilio
async def test_a_twilio_media_stream_is_scored(scorer: Any) -> None:
    async with running(scorer, TOKEN) as (monitor, base, _):

        async def call() -> None:
            async with connect(ws(base, "/twilio")) as client:  # Twilio's URL carries no query string
                for message in twilio_call(speech8k(3.0), {"name": "agent7", "token": TOKEN}):
                    await client.send(message)

        messages = await subscribe_until_end(monitor, "agent7", call, TOKEN)
    start = next(m for m in messages if m["type"] == "stream_start")
    assert (start["kind"], start["rate"]) == ("twilio", 8_000)
    ok = [m for m in scores(messages, "agent7") if m["status"] == "ok"]
    assert ok and all(1.0 <= m["mos"] <= 5.0 for m in ok)
    end = next(m for m in messages if m["type"] == "stream_end")
    assert end["seconds"] == pytest.approx(3.0, abs=0.05)


async def test_a_twilio_call_with_bad_messages_and_no_stop_still_scores_the_good_audio(scorer: Any) -> None:
    audio = speech8k(3.0)
    good = twilio_call(audio, {"name": "messy"}, skip={40, 41, 42, 43, 44}, stop=False)  # 100 ms lost
    payload = mulaw(audio[:160])
    bad = [
        twilio_media(99, 1, 0, payload),  # media before start
        "{this is not json",
        json.dumps(["an", "array"]),
        json.dumps({"event": "media"}),  # no media object
        json.dumps({"event": "who-knows"}),
    ]
    async with running(scorer) as (monitor, base, app):

        async def call() -> None:
            async with connect(ws(base, "/twilio")) as client:
                for m in bad:
                    await client.send(m)
                await client.send(b"\x00\x01binary")  # Twilio never sends binary frames
                for i, m in enumerate(good):
                    await client.send(m)
                    if i == 20:
                        await client.send(twilio_start())  # a second start
                        await client.send(twilio_media(500, 1, 0, payload))  # replayed, behind
                # the call ends without "stop": the connection just closes

        messages = await subscribe_until_end(monitor, "messy", call)
        async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as r:
            text = await r.text()
    end = next(m for m in messages if m["type"] == "stream_end")
    # 3 s of audio, 100 ms of it lost: kept at its place as silence where the normaliser does that
    # (AudioChunk.concealed marks that version), else left out of the stream's time
    kept_in_place = "concealed" in AudioChunk.__dataclass_fields__
    assert end["reason"] == "ended" and end["seconds"] == pytest.approx(
        3.0 if kept_in_place else 2.9, abs=0.05
    )
    got = scores(messages, "messy")
    assert [m for m in got if m["status"] == "ok"]
    assert sum(m["diagnostics"]["dropped_seconds"] for m in got) == pytest.approx(0.1, abs=0.002)
    for reason, count in [("before_start", 1), ("malformed", 5), ("out_of_order", 2)]:
        line = f'samos_ingest_messages_dropped_total{{kind="twilio",reason="{reason}"}} {count:.1f}'
        assert line in text, reason


async def test_both_twilio_tracks_become_two_streams(scorer: Any) -> None:
    caller, agent = speech8k(2.0), speech8k(2.0)[::-1].copy()
    inbound = twilio_call(caller, {"name": "call9", "track": "both"}, stop=False)
    outbound = [
        json.dumps({**json.loads(m), "media": {**json.loads(m)["media"], "track": "outbound"}})
        for m in twilio_call(agent, stop=False)
        if json.loads(m)["event"] == "media"
    ]
    async with running(scorer) as (monitor, base, _):
        reader = asyncio.create_task(
            read_until(
                ws_url(monitor, "call9-inbound,call9-outbound"),
                lambda ms: sum(m["type"] == "stream_end" for m in ms) == 2,
                30,
            ),
            name="test:read",
        )
        await asyncio.sleep(0.2)
        async with connect(ws(base, "/twilio")) as client:
            await client.send(inbound[0])
            await client.send(inbound[1])  # start
            for a, b in zip(inbound[2:], outbound, strict=True):  # interleaved, as Twilio sends them
                await client.send(a)
                await client.send(b)
        messages = await reader
    ends = {m["stream"]: m for m in messages if m["type"] == "stream_end"}
    assert set(ends) == {"call9-inbound", "call9-outbound"}
    assert all(e["seconds"] == pytest.approx(2.0, abs=0.05) for e in ends.values())
    assert {m["kind"] for m in messages if m["type"] == "stream_start"} == {"twilio"}


async def test_twilio_tokens_are_checked(scorer: Any) -> None:
    async with running(scorer, TOKEN) as (monitor, base, _):
        with pytest.raises(InvalidStatus) as e:  # a wrong token in the query: refused before the upgrade
            async with connect(ws(base, "/twilio?token=wrong")):
                pass
        assert e.value.response.status_code == 401
        async with connect(ws(base, "/twilio")) as client:  # no token anywhere: start is refused
            await client.send(twilio_connected())
            await client.send(twilio_start(parameters={"name": "intruder", "token": "guess"}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "intruder" not in monitor.streams


async def test_a_twilio_call_that_goes_quiet_ends_after_the_inactivity_timeout(scorer: Any) -> None:
    async with running(scorer, telephony_inactivity_timeout=1.0) as (monitor, base, _):
        async with connect(ws(base, "/twilio")) as client:
            for m in twilio_call(speech8k(1.5), {"name": "quiet"}, stop=False):
                await client.send(m)
            assert await eventually(lambda: "quiet" in monitor.streams, 5)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)  # nothing more is sent: the monitor hangs up
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        assert await eventually(lambda: "quiet" not in monitor.streams, 5)


async def test_a_twilio_client_that_never_starts_does_not_hold_its_slot(scorer: Any) -> None:
    async with running(scorer, telephony_inactivity_timeout=1.0) as (_, base, app):
        async with connect(ws(base, "/twilio")) as client:
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(100):  # valid, ignored events keep coming, but no start
                    await client.send(twilio_connected())
                    await asyncio.sleep(0.03)
                await asyncio.wait_for(client.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert await eventually(lambda: not app[CALLS].sockets, 5)


async def test_garbage_floods_are_closed_and_do_not_disturb_another_call(scorer: Any) -> None:
    async with running(scorer, telephony_max_message_bytes=4096) as (monitor, base, app):

        async def garbage() -> list[int]:
            codes = []
            async with connect(ws(base, "/twilio")) as flood:
                with pytest.raises(ConnectionClosed) as closed:
                    for _ in range(200):
                        await flood.send("garbage")
                        await asyncio.sleep(0)
                    await asyncio.wait_for(flood.recv(), 5)
                codes.append(closed.value.rcvd.code if closed.value.rcvd else -1)
            async with connect(ws(base, "/twilio"), max_size=None) as big:
                with pytest.raises(ConnectionClosed) as closed:
                    await big.send("x" * 10_000)  # over max_message_bytes
                    await asyncio.wait_for(big.recv(), 5)
                codes.append(closed.value.rcvd.code if closed.value.rcvd else -1)
            return codes

        async def call() -> None:
            async with connect(ws(base, "/twilio")) as client:
                flood = asyncio.create_task(garbage(), name="test:garbage")
                for m in twilio_call(speech8k(2.0), {"name": "steady"}):
                    await client.send(m)
                    await asyncio.sleep(0.002)
                assert await flood == [1007, 1009]

        messages = await subscribe_until_end(monitor, "steady", call)
        assert len(app[CALLS].sockets) == 0
    end = next(m for m in messages if m["type"] == "stream_end")
    assert end["seconds"] == pytest.approx(2.0, abs=0.05)
    assert sum(m["diagnostics"]["dropped_seconds"] for m in scores(messages, "steady")) == 0


# ------------------------------------------------------------------------------- mod_audio_fork, Asterisk
async def test_mod_audio_fork_l16_frames_are_scored(scorer: Any) -> None:
    async with running(scorer, TOKEN) as (monitor, base, _):

        async def call() -> None:
            url = ws(base, f"/pcm?rate=16000&name=fs-call&token={TOKEN}")
            async with connect(url, subprotocols=[Subprotocol("audio.drachtio.org")]) as client:
                assert client.subprotocol == "audio.drachtio.org"
                await client.send(json.dumps({"callId": "c0ffee", "from": "+15551234567"}))  # metadata
                for frame in l16le_frames(speech16k(3.0), 16_000):
                    await client.send(frame)

        messages = await subscribe_until_end(monitor, "fs-call", call, TOKEN)
    start = next(m for m in messages if m["type"] == "stream_start")
    assert (start["kind"], start["rate"]) == ("pcm", 16_000)
    assert [m for m in scores(messages, "fs-call") if m["status"] == "ok"]
    assert next(m for m in messages if m["type"] == "stream_end")["seconds"] == pytest.approx(3.0, abs=0.05)


@pytest.mark.parametrize("json_form", [False, True])
async def test_asterisk_chan_websocket_media_start_gives_the_rate(scorer: Any, json_form: bool) -> None:
    async with running(scorer) as (monitor, base, _):

        async def call() -> None:
            async with connect(ws(base, "/pcm?name=ast"), subprotocols=[Subprotocol("media")]) as client:
                await client.send(asterisk_media_start("slin16", json_form))
                for frame in l16le_frames(speech16k(2.0), 16_000):
                    await client.send(frame)
                await client.send("MEDIA_XOFF")
                await client.send('{"event": "HANGUP"}' if json_form else "HANGUP")

        messages = await subscribe_until_end(monitor, "ast", call)
    start = next(m for m in messages if m["type"] == "stream_start")
    assert (start["kind"], start["rate"]) == ("pcm", 16_000)
    assert scores(messages, "ast")


async def test_pcm_refusals(scorer: Any) -> None:
    async with running(scorer, TOKEN, telephony_max_streams=1) as (monitor, base, _):
        for query, status in [
            ("rate=abc", 400),
            ("rate=4000", 400),
            ("encoding=mp3&rate=8000", 400),
            ("rate=8000&name=bad%20name", 400),
            ("rate=8000&token=wrong", 401),
        ]:
            with pytest.raises(InvalidStatus) as e:
                async with connect(ws(base, f"/pcm?{query}")):
                    pass
            assert e.value.response.status_code == status, query
        async with aiohttp.ClientSession() as http:  # a plain GET is not a websocket
            async with http.get(base + f"/pcm?rate=8000&token={TOKEN}") as r:
                assert r.status == 426
        with pytest.raises(InvalidStatus) as e:  # the token missing: nothing later could carry it
            async with connect(ws(base, "/pcm?rate=8000")):
                pass
        assert e.value.response.status_code == 401
        async with connect(ws(base, f"/pcm?token={TOKEN}")) as client:  # an unsupported Asterisk format
            await client.send(asterisk_media_start("opus"))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
        async with connect(ws(base, f"/pcm?rate=8000&token={TOKEN}")) as first:
            await first.send(b"\x00\x00" * 160)
            with pytest.raises(InvalidStatus) as e:  # max_calls = 1
                async with connect(ws(base, f"/pcm?rate=8000&token={TOKEN}")):
                    pass
            assert e.value.response.status_code == 503
            assert e.value.response.headers["Retry-After"] == "5"


# ------------------------------------------------------------------------------------------------ WHIP
async def whip_offer(track: Any) -> Any:
    """An aiortc publisher as RFC 9725 writes the client, shaped like OBS's (audio and a video section,
    ICE candidates gathered into the offer, no trickle)."""
    return await offer_for(track, video=True)


async def test_whip_publish_patch_and_delete(scorer: Any) -> None:
    async with running(scorer, TOKEN) as (monitor, base, app), aiohttp.ClientSession() as http:
        pc = await whip_offer(ArrayTrack(speech_clip(6.0)))
        reader = asyncio.create_task(read_until(ws_url(monitor, "obs", TOKEN), ended("obs"), 30), name="t")
        await asyncio.sleep(0.2)
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {TOKEN}"}
        async with http.post(base + "/whip?name=obs", data=pc.localDescription.sdp, headers=headers) as r:
            assert r.status == 201, await r.text()
            assert r.content_type == "application/sdp"
            location = r.headers["Location"]
            answer = await r.text()
        assert location.startswith("/whip/") and "a=fingerprint" in answer
        assert "m=video" in answer and "a=inactive" in answer  # the video is refused, the audio taken
        from aiortc import RTCSessionDescription

        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        assert await eventually(lambda: "obs" in monitor.streams, 10)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        patch = {**auth, "Content-Type": "application/trickle-ice-sdpfrag"}
        async with http.patch(base + location, data="a=ice-ufrag:x\r\n", headers=patch) as r:
            assert r.status == 405 and r.headers["Allow"] == "DELETE"
        async with http.delete(base + location) as r:
            assert r.status == 401  # no token
        await asyncio.sleep(2.5)  # some windows scored
        async with http.delete(base + location, headers=auth) as r:
            assert r.status == 200
        messages = await reader
        async with http.delete(base + location, headers=auth) as r:
            assert r.status == 404
        await pc.close()
        assert not app[WHIP_SESSIONS]
    start = next(m for m in messages if m["type"] == "stream_start")
    assert start["kind"] == "webrtc"
    assert [m for m in scores(messages, "obs") if m["status"] == "ok"]


async def test_whip_delete_after_the_publisher_hung_up(scorer: Any) -> None:
    """A browser's Stop closes the peer connection and sends DELETE together: when the connection's
    end arrives first, the DELETE still succeeds (200, not 404) and the scored windows are kept."""
    async with running(scorer, TOKEN) as (monitor, base, app), aiohttp.ClientSession() as http:
        pc = await whip_offer(ArrayTrack(speech_clip(6.0)))
        reader = asyncio.create_task(read_until(ws_url(monitor, "hup", TOKEN), ended("hup"), 30), name="t")
        await asyncio.sleep(0.2)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.post(
            base + "/whip?name=hup",
            data=pc.localDescription.sdp,
            headers={**auth, "Content-Type": "application/sdp"},
        ) as r:
            assert r.status == 201, await r.text()
            location, answer = r.headers["Location"], await r.text()
        from aiortc import RTCSessionDescription

        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        assert await eventually(lambda: "hup" in monitor.streams, 10)
        source = monitor.streams["hup"].source
        await asyncio.sleep(2.5)  # some windows scored
        await pc.close()
        assert await eventually(lambda: source.ended, 10)
        async with http.delete(base + location, headers=auth) as r:
            assert r.status == 200, await r.text()
        messages = await reader
        async with http.delete(base + location, headers=auth) as r:
            assert r.status == 404
        assert not app[WHIP_SESSIONS]
    assert [m for m in scores(messages, "hup") if m["status"] == "ok"]


async def test_whip_refusals(scorer: Any) -> None:
    async with running(scorer, TOKEN) as (_, base, __), aiohttp.ClientSession() as http:
        sdp_headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {TOKEN}"}
        async with http.post(base + "/whip", data="v=0\r\n") as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        async with http.post(
            base + "/whip", data="{}", headers={**sdp_headers, "Content-Type": "application/json"}
        ) as r:
            assert r.status == 415
        async with http.post(base + "/whip", data="hello", headers=sdp_headers) as r:
            assert r.status == 400 and "v=0" in (await r.json())["error"]
        async with http.post(base + "/whip", data=b"\xff\xfe", headers=sdp_headers) as r:
            assert r.status == 400
        async with http.post(base + "/whip", data="v=0\r\n" + "a=x\r\n" * 20_000, headers=sdp_headers) as r:
            assert r.status == 413
        async with http.options(base + "/whip") as r:
            assert r.status == 204 and r.headers["Accept-Post"] == "application/sdp"
        async with http.patch(base + "/whip/nope", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 404
        async with http.get(base + "/whip") as r:
            assert r.status == 405


# ---------------------------------------------------------------------------------------------- /metrics
async def test_rtp_counters_reach_metrics(scorer: Any) -> None:
    from rtp_peers import RtpSender, l16_payloads

    from samos.monitor.sources.rtp import RtpSource, RtpSpec

    async with running(scorer) as (monitor, base, _), aiohttp.ClientSession() as http:
        source = await RtpSource.open(RtpSpec("127.0.0.1", 0, "fwd", codec="l16", rate=16_000))
        await monitor.add_source(source)
        sender = RtpSender(source.local_address[1])
        try:
            for i, p in enumerate(l16_payloads(speech16k(0.4), 320)):
                if i not in (5, 6):  # two packets lost
                    sender.send(sender.packet(i, p, 320))
            sender.send(b"junk")
            assert await eventually(lambda: source.stats.lost_packets == 2, 5)
        finally:
            sender.close()
        async with http.get(base + "/metrics") as r:
            text = await r.text()
    assert 'samos_rtp_packets_total{result="received",stream="fwd"} 18.0' in text
    assert 'samos_rtp_packets_total{result="lost",stream="fwd"} 2.0' in text
    assert 'samos_rtp_packets_total{result="malformed",stream="fwd"} 1.0' in text
    assert 'samos_rtp_loss_ratio{stream="fwd"} 0.1' in text


async def test_stopping_the_monitor_hangs_up_live_calls(scorer: Any) -> None:
    cfg = replace(monitor_config(), http=HttpConfig(enabled=True, host="127.0.0.1", port=0))
    monitor = Monitor(cfg, scorer)
    await monitor.start()
    assert monitor.http_address is not None
    base = "ws://{}:{}".format(*monitor.http_address)
    stopped = False
    try:
        async with connect(f"{base}/twilio") as twilio, connect(f"{base}/pcm?rate=16000&name=fs") as pcm:
            for m in twilio_call(speech8k(1.0), {"name": "tw"}, stop=False):
                await twilio.send(m)
            for frame in l16le_frames(speech16k(1.0), 16_000):
                await pcm.send(frame)
            assert await eventually(lambda: {"tw", "fs"} <= set(monitor.streams), 5)
            async with connect(ws_url(monitor, "tw")) as sub:
                await monitor.stop()
                stopped = True
                ends = [json.loads(m) async for m in sub if json.loads(m)["type"] == "stream_end"]
            codes = []
            for client in (twilio, pcm):
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(client.recv(), 5)
                codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
    finally:
        if not stopped:
            await monitor.stop()
    assert [e["reason"] for e in ends] == ["stopped"]
    assert codes == [1001, 1001]
    assert not await tasks_left()
