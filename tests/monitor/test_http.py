"""The HTTP app: real aiortc publishers signalling through the real aiohttp ``/offer`` endpoint into a
running Monitor (tiny ONNX model, real runtime), scores read back from its websocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from webrtc_peers import ArrayTrack, offer_for, publish, speech_clip
from websockets.asyncio.client import connect as ws_connect

from samos.monitor.app import Monitor
from samos.monitor.config import AuthConfig, HttpConfig, MonitorConfig, WebsocketConfig, WindowConfig
from samos.monitor.http import SignallingLimits, build_http_app
from samos.monitor.sources.webrtc import WebRTCOptions, WebRTCSource

pytestmark = pytest.mark.timeout(60)
TOKEN = "s3cret-token"
FAST = WebRTCOptions(connect_timeout=10.0, inactivity_timeout=1.0, close_timeout=3.0)


def monitor_config(token: str | None = None) -> MonitorConfig:
    return MonitorConfig(
        window=WindowConfig(window_seconds=1.0, hop_seconds=0.5, min_final_seconds=0.5),
        ws=WebsocketConfig(host="127.0.0.1", port=0),
        http=HttpConfig(enabled=False),  # the tests run build_http_app themselves, with their limits
        auth=AuthConfig(token=token),
    )


@contextlib.asynccontextmanager
async def running(
    scorer: Any, token: str | None = None, limits: SignallingLimits | None = None
) -> AsyncIterator[tuple[Monitor, str, web.AppRunner]]:
    """A started Monitor and its HTTP app on 127.0.0.1 (free ports); yields (monitor, base URL, runner)."""
    cfg = monitor_config(token)
    monitor = Monitor(cfg, scorer)
    await monitor.start()
    app = build_http_app(monitor, cfg, limits or SignallingLimits(webrtc=FAST))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield monitor, f"http://127.0.0.1:{port}", runner
    finally:
        await runner.cleanup()
        await monitor.stop()


def ws_url(monitor: Monitor, stream: str, token: str | None = None) -> str:
    assert monitor.ws_address is not None
    host, port = monitor.ws_address
    return f"ws://{host}:{port}/?streams={stream}" + (f"&token={token}" if token else "")


async def read_until(url: str, stop: Any, timeout: float = 20.0) -> list[dict]:
    """Websocket messages until ``stop(messages)`` is true."""
    messages: list[dict] = []
    async with ws_connect(url) as ws:
        deadline = time.monotonic() + timeout
        while not stop(messages):
            raw = await asyncio.wait_for(ws.recv(), timeout=max(0.01, deadline - time.monotonic()))
            messages.append(json.loads(raw))
    return messages


def scores(messages: list[dict], stream: str) -> list[dict]:
    return [m for m in messages if m["type"] == "score" and m["stream"] == stream]


async def eventually(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll ``predicate()`` every 50 ms until it is true (True) or ``timeout`` s pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def tasks_left(grace: float = 3.0) -> list[asyncio.Task]:
    deadline = time.monotonic() + grace
    while True:
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------------------------------ end to end
async def test_a_webrtc_publisher_is_scored_and_published(scorer: Any) -> None:
    async with running(scorer) as (monitor, base, _), aiohttp.ClientSession() as http:
        sender, answer = await publish(http, base, ArrayTrack(speech_clip(3.0)), name="alice")
        assert answer["type"] == "answer" and answer["name"] == "alice"
        assert "alice" in monitor.streams
        messages = await read_until(
            ws_url(monitor, "alice"),
            lambda ms: len(scores(ms, "alice")) >= 2 or any(m["type"] == "stream_end" for m in ms),
        )
        start = next(m for m in messages if m["type"] == "stream_start")
        assert (start["stream"], start["kind"], start["rate"]) == ("alice", "webrtc", 48_000)
        got = scores(messages, "alice")
        assert len(got) >= 2
        ok = [m for m in got if m["status"] == "ok"]
        assert ok, [m["status"] for m in got]
        assert all(1.0 <= m["mos"] <= 5.0 and m["rolling_mos"] is not None for m in ok)
        assert ok[0]["diagnostics"]["rate"] == 48_000
        # the sender's media ends; the inactivity timeout ends the stream and the monitor says so
        end = await read_until(
            ws_url(monitor, "alice"), lambda ms: any(m["type"] == "stream_end" for m in ms)
        )
        assert end[-1]["reason"] == "ended"
        await monitor.wait_idle()
        async with http.get(f"{base}/healthz") as resp:
            assert (await resp.json())["peers"] == 0
        async with http.get(f"{base}/metrics") as resp:
            text = await resp.text()
        assert 'samos_webrtc_offers_total{result="accepted"} 1.0' in text
        assert 'samos_windows_total{status="ok",stream="alice"}' in text
        await sender.close()
    assert not await tasks_left()


async def test_concurrent_publishers_get_their_own_streams(scorer: Any) -> None:
    async with running(scorer) as (monitor, base, _), aiohttp.ClientSession() as http:
        results = await asyncio.gather(
            *(publish(http, base, ArrayTrack(speech_clip(2.5)), name="room") for _ in range(3))
        )
        names = sorted(answer["name"] for _, answer in results)
        assert names == ["room", "room-2", "room-3"]
        assert set(names) <= set(monitor.streams)
        messages = await read_until(
            ws_url(monitor, ",".join(names)), lambda ms: all(len(scores(ms, n)) >= 1 for n in names)
        )
        assert all(scores(messages, n) for n in names)
        for pc, _ in results:
            await pc.close()


async def test_shutdown_closes_every_peer_connection(scorer: Any) -> None:
    async with running(scorer) as (monitor, base, runner), aiohttp.ClientSession() as http:
        sender, answer = await publish(http, base, ArrayTrack(speech_clip(30.0), end="hang"))
        assert answer["name"] == "webrtc"
        source = cast(WebRTCSource, monitor.streams["webrtc"].source)
        assert await eventually(lambda: source.stats.frames >= 10)  # connected and flowing
        await runner.cleanup()
        assert source.connection_state == "closed"
        await sender.close()


# ------------------------------------------------------------------------------------------ pages
async def test_pages_config_and_metrics(scorer: Any) -> None:
    async with running(scorer) as (monitor, base, _), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/") as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            assert "/static/publish.js" in await resp.text()
        async with http.get(f"{base}/overlay") as resp:
            page = await resp.text()
            assert resp.status == 200 and "/static/overlay.js" in page and "background: transparent" in page
        for script in ("samos.js", "publish.js", "overlay.js"):
            async with http.get(f"{base}/static/{script}") as resp:
                assert resp.status == 200 and "javascript" in resp.content_type
        async with http.get(f"{base}/static/../http.py") as resp:
            assert resp.status in (403, 404)
        async with http.get(f"{base}/config.json") as resp:
            cfg = await resp.json()
        assert monitor.ws_address is not None
        assert cfg["ws_url"] == f"ws://127.0.0.1:{monitor.ws_address[1]}/"
        assert cfg["auth_required"] is False and cfg["window_seconds"] == 1.0
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            text = await resp.text()
        assert "samos_streams" in text and "samos_webrtc_peers 0.0" in text
        assert f'provider="{monitor.model["provider"]}"' in text and "samos_model_info{" in text
        async with http.get(f"{base}/healthz") as resp:
            assert await resp.json() == {"status": "ok", "peers": 0, "version": cfg["version"]}


# ------------------------------------------------------------------------------------------ bad signalling
async def post_offer(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, dict]:
    async with http.post(url, **kw) as resp:
        return resp.status, await resp.json()


async def test_bad_signalling_gets_a_clear_4xx(scorer: Any) -> None:
    async with running(scorer) as (monitor, base, _), aiohttp.ClientSession() as http:
        url = f"{base}/offer"
        sender = await offer_for(ArrayTrack(speech_clip(1.0)))
        good = {"sdp": sender.localDescription.sdp, "type": "offer"}
        video_only = await offer_for(None, video=True)

        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"json": {"sdp": "v=0\r\nm=audio x\r\n", "type": "offer"}}, 400, "malformed SDP"),
            ({"json": {"sdp": "not an sdp", "type": "offer"}}, 400, "malformed SDP"),
            ({"json": {**good, "type": "answer"}}, 400, "type 'offer'"),
            ({"json": {"type": "offer"}}, 400, "'sdp' and 'type'"),
            ({"json": [1, 2]}, 400, "JSON object"),
            ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
            ({"data": json.dumps(good), "headers": {"Content-Type": "text/plain"}}, 415, "application/json"),
            ({"data": json.dumps(good)}, 415, "application/json"),
            ({"json": {**good, "sdp": good["sdp"] + "a=x:" + "y" * 100_000 + "\r\n"}}, 413, "too large"),
            ({"json": {"sdp": video_only.localDescription.sdp, "type": "offer"}}, 400, "sends no audio"),
            ({"json": {**good, "name": "../etc"}}, 400, "invalid stream name"),
            ({"json": {**good, "name": "x" * 65}}, 400, "invalid stream name"),
        ]
        for kwargs, status, message in cases:
            got_status, body = await post_offer(http, url, **kwargs)
            assert (got_status, message in body.get("error", "")) == (status, True), (kwargs.keys(), body)
        async with http.get(url) as resp:
            assert resp.status == 405
        assert not monitor.streams
        async with http.get(f"{base}/metrics") as resp:
            assert 'samos_webrtc_offers_total{result="bad_offer"} 4.0' in await resp.text()
        for pc in (sender, video_only):
            await pc.close()


async def test_chunked_huge_body_is_refused(scorer: Any) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"sdp": "'
        for _ in range(200):
            yield b"x" * 1024
        yield b'", "type": "offer"}'

    async with running(scorer) as (_, base, _), aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/offer", data=body(), headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 413
            assert "too large" in (await resp.json())["error"]


async def test_publisher_token(scorer: Any) -> None:
    async with running(scorer, token=TOKEN) as (monitor, base, _), aiohttp.ClientSession() as http:
        url = f"{base}/offer"
        sender = await offer_for(ArrayTrack(speech_clip(1.0)))
        good = {"sdp": sender.localDescription.sdp, "type": "offer"}
        status, body = await post_offer(http, url, json=good)
        assert (status, body["error"]) == (401, "missing publisher token")
        status, body = await post_offer(http, url, json={**good, "token": "wrong"})
        assert (status, body["error"]) == (401, "invalid publisher token")
        status, body = await post_offer(http, url, json=good, headers={"Authorization": "Bearer nope"})
        assert status == 401
        status, body = await post_offer(http, url, json={**good, "token": 12345})
        assert status == 401
        async with http.get(f"{base}/config.json") as resp:
            assert (await resp.json())["auth_required"] is True
        assert not monitor.streams
        await sender.close()

        pc1, a1 = await publish(http, base, ArrayTrack(speech_clip(1.0)), name="bearer", token=TOKEN)
        pc2 = await offer_for(ArrayTrack(speech_clip(1.0)))
        status, a2 = await post_offer(
            http, f"{url}?name=query", json={"sdp": pc2.localDescription.sdp, "type": "offer", "token": TOKEN}
        )
        assert (status, a1["name"], a2["name"]) == (200, "bearer", "query")
        # the websocket takes the same token
        messages = await read_until(ws_url(monitor, "bearer", TOKEN), lambda ms: len(ms) >= 2)
        assert messages[1]["type"] == "stream_start"
        for pc in (pc1, pc2):
            await pc.close()


async def test_max_peers(scorer: Any) -> None:
    limits = SignallingLimits(max_peers=1, webrtc=FAST)
    async with running(scorer, limits=limits) as (monitor, base, _), aiohttp.ClientSession() as http:
        pc1, _ = await publish(http, base, ArrayTrack(speech_clip(5.0)))
        pc2 = await offer_for(ArrayTrack(speech_clip(1.0)))
        async with http.post(
            f"{base}/offer", json={"sdp": pc2.localDescription.sdp, "type": "offer"}
        ) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "5"
            assert "too many WebRTC publishers (limit 1)" in (await resp.json())["error"]
        source = cast(WebRTCSource, monitor.streams["webrtc"].source)
        assert await eventually(lambda: source.stats.frames > 0)  # connected
        await pc1.close()
        # the slot frees once the first peer is gone

        async def peers() -> int:
            async with http.get(f"{base}/healthz") as resp:
                return int((await resp.json())["peers"])

        for _ in range(50):  # 5 s
            if await peers() == 0:
                break
            await asyncio.sleep(0.1)
        assert await peers() == 0
        pc3, answer = await publish(http, base, ArrayTrack(speech_clip(1.0)))
        assert answer["type"] == "answer"
        for pc in (pc2, pc3):
            await pc.close()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_peers"):
        SignallingLimits(max_peers=0)
    with pytest.raises(ValueError, match="max_body_bytes"):
        SignallingLimits(max_body_bytes=10)


def test_limits_from_the_http_config() -> None:
    assert SignallingLimits.from_config(HttpConfig()) == SignallingLimits()

    class Http:  # a config section that carries the optional fields
        max_peers = 3
        webrtc_inactivity_timeout = 2.5
        webrtc_batch_seconds = 0.2

    limits = SignallingLimits.from_config(Http())
    assert limits.max_peers == 3 and limits.webrtc.inactivity_timeout == 2.5
    assert limits.webrtc.batch_seconds == 0.2  # each source's chunks as long as the hand-off's batches
    assert limits.max_body_bytes == SignallingLimits().max_body_bytes
