"""The console's API on a running Monitor: /api/streams, /api/streams/{name}/history, /console, and the
stream_summary message (websocket, JSONL, webhook), with a real websocket client and real HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web
from fake_source import ListSource, split
from monitor_helpers import speech_like
from websockets.asyncio.client import connect

from samos.monitor.app import Monitor
from samos.monitor.config import (
    AggregateConfig,
    AlertConfig,
    AuthConfig,
    HttpConfig,
    MonitorConfig,
    WebsocketConfig,
    WindowConfig,
)

RATE = 16_000


def call(seconds_good: float, seconds_bad: float) -> np.ndarray:
    """Loud bursts (the level model scores them low) after quiet ones (scored high)."""
    good = speech_like(seconds_good, RATE, level=0.01, seed=1)
    if not seconds_bad:
        return good
    return np.concatenate([good, speech_like(seconds_bad, RATE, level=0.3, seed=2)])


async def run_monitor(tmp_path: Path, scorer: Any, token: str | None, webhook: str | None = None) -> Monitor:
    cfg = MonitorConfig(
        window=WindowConfig(window_seconds=1.0, hop_seconds=0.5),
        aggregate=AggregateConfig(horizon_seconds=2.0),
        alerts=AlertConfig(threshold=2.5, min_duration_seconds=1.0, webhook=webhook),
        ws=WebsocketConfig(port=0, batch_seconds=0.0),
        http=HttpConfig(enabled=True, port=0),
        auth=AuthConfig(token=token),
        log=str(tmp_path / "log.jsonl"),
    )
    mon = Monitor(cfg, scorer)
    await mon.start()
    return mon


async def test_streams_history_summary_and_tokens(tmp_path: Path, scorer: Any) -> None:
    hooks: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    mon = await run_monitor(tmp_path, scorer, token="s3cret", webhook=f"http://127.0.0.1:{hook_port}/hook")
    try:
        assert mon.http_address is not None and mon.ws_url is not None
        base = f"http://127.0.0.1:{mon.http_address[1]}"
        async with connect(mon.ws_url + "?token=s3cret") as ws, aiohttp.ClientSession() as http:
            await mon.add_source(ListSource("bridge/1", split(call(3.0, 4.0), 320), RATE, pace=0.002))
            await mon.add_source(ListSource("calm", split(call(6.0, 0.0), 320), RATE, forever=True))
            seen: list[dict[str, Any]] = []
            while not any(m["type"] == "stream_end" for m in seen):
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
            auth = {"Authorization": "Bearer s3cret"}
            async with http.get(f"{base}/api/streams") as r:
                assert r.status == 401
            async with http.get(f"{base}/api/streams?token=wrong") as r:
                assert r.status == 401
            async with http.get(f"{base}/api/streams", headers=auth) as r:
                assert r.status == 200
                body = await r.json()
            by_name = {s["name"]: s for s in body["streams"]}
            assert set(by_name) == {"bridge/1", "calm"}
            ended, live = by_name["bridge/1"], by_name["calm"]
            assert ended["ended"] is not None and ended["end_reason"] == "ended"
            assert live["ended"] is None and live["rolling_mos"] > 3.0 and live["recent"]
            assert ended["summary"]["alerts"]["low_mos"]["raised"] == 1, ended["summary"]
            assert ended["summary"]["mos"]["min"] < 2.5 < ended["summary"]["mos"]["p90"]
            assert body["threshold"] == 2.5

            async with http.get(f"{base}/api/streams/bridge%2F1/history?token=s3cret") as r:
                assert r.status == 200
                history = (await r.json())["messages"]
            ws_msgs = [m for m in seen if m["stream"] == "bridge/1" and m["type"] in ("score", "alert")]
            assert [m["seq"] for m in history] == [m["seq"] for m in ws_msgs]
            assert history == ws_msgs  # the same messages, byte for byte after decoding
            cut = history[5]["seq"]
            async with http.get(f"{base}/api/streams/bridge%2F1/history?since={cut}", headers=auth) as r:
                assert [m["seq"] for m in (await r.json())["messages"]] == [m["seq"] for m in history[6:]]
            async with http.get(f"{base}/api/streams/nobody/history", headers=auth) as r:
                assert r.status == 404 and "nobody" in (await r.json())["error"]
            async with http.get(f"{base}/api/streams/calm/history?since=x", headers=auth) as r:
                assert r.status == 400 and "since" in (await r.json())["error"]
            async with http.get(f"{base}/console") as r:
                assert r.status == 200 and "samos console" in await r.text()
            async with http.get(f"{base}/static/console.js") as r:
                assert r.status == 200

        types = [m["type"] for m in seen if m["stream"] == "bridge/1"]
        assert types[-2:] == ["stream_summary", "stream_end"]
        summary = next(m for m in seen if m["type"] == "stream_summary")
        assert summary["schema"] == "samos.monitor/1" and summary["reason"] == "ended"
        assert summary["duration_seconds"] == 7.0 and summary["scored_windows"] == summary["windows"]
        assert summary["seconds_below_threshold"] >= 2.0
        assert summary["worst"]["mos"] == summary["mos"]["mean"]  # a 7 s call: the worst 10 s is all of it
        logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
        assert [m for m in logged if m["type"] == "stream_summary"] == [summary]
        for _ in range(50):
            if any(h["type"] == "stream_summary" for h in hooks):
                break
            await asyncio.sleep(0.1)
        assert [h for h in hooks if h["type"] == "stream_summary"] == [summary]
    finally:
        await mon.stop()
        await runner.cleanup()


async def test_a_long_call_keeps_history_memory_flat(tmp_path: Path, scorer: Any) -> None:
    """Ten minutes of audio at a 0.25 s hop (about 2,400 windows), as fast as it goes: the history keeps
    the last minute of stream time, and its size stops growing once that minute is full."""
    from samos.monitor.history import HistoryConfig

    cfg = MonitorConfig(
        window=WindowConfig(window_seconds=1.0, hop_seconds=0.25),
        ws=WebsocketConfig(enabled=False),
        history=HistoryConfig(minutes=1.0),
    )
    mon = Monitor(cfg, scorer)
    await mon.start()
    sizes: list[tuple[int, int]] = []
    try:
        audio = speech_like(600.0, 8_000, level=0.05, seed=3)
        await mon.add_source(ListSource("long", split(audio, 8_000), 8_000, forever=True))
        while (
            n := mon.metrics.get_sample_value("samos_windows_total", {"stream": "long", "status": "ok"}) or 0
        ) < 2300:
            if n > 600:
                ring = mon.history.get("long").ring  # type: ignore[union-attr]
                sizes.append((len(ring), sum(len(t) for _, _, t in ring)))
            await asyncio.sleep(0.2)
    finally:
        await mon.stop()
    assert sizes, "the call never got past its first minute"
    counts = {c for c, _ in sizes}
    assert max(counts) <= 4 * 60 + 2  # one minute of windows at a 0.25 s hop (+ the one on the edge)
    assert max(b for _, b in sizes) < 1.1 * min(b for _, b in sizes)  # flat, not growing
