"""Bad websocket clients: oversized frames, binary garbage, unknown messages, 1,000 rapid connects and
disconnects. Each gets a clear answer (an ``error`` message or a close code); a well-behaved
subscriber of a live stream loses nothing meanwhile."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from reliability_helpers import (
    eventually,
    read_messages,
    running_monitor,
    seq_gaps,
    small_config,
    speech_like,
    ws_url,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from samos.monitor.sources.file import FileSource

pytestmark = pytest.mark.timeout(120)


async def live_stream(monitor: Any, tmp_path: Path) -> str:
    sf.write(tmp_path / "talk.wav", speech_like(2.0, 16_000, 0.05), 16_000)
    src = await FileSource.open(str(tmp_path / "talk.wav"), "talk", realtime=True, loop=True)
    return await monitor.add_source(src)


async def test_bad_messages_get_error_replies_and_the_stream_goes_on(tmp_path: Path, scorer: Any) -> None:
    async with running_monitor(small_config(), scorer) as (monitor, _):
        await live_stream(monitor, tmp_path)
        async with connect(ws_url(monitor, "streams=talk")) as good, connect(ws_url(monitor)) as bad:
            first = await read_messages(bad, lambda ms: len(ms) >= 1)
            assert first[0]["type"] == "hello"
            cases = [
                (b"\x00\xff\xfe garbage \x80", "binary messages are not accepted"),
                ("{not json", "Expecting property name"),
                ("[1, 2, 3]", "must be a JSON object"),
                ('{"type": "publish", "mos": 5}', "unknown message type 'publish'"),
                ('{"type": "subscribe", "streams": 7}', "streams must be a list"),
                ("\ud800".encode("utf-8", "surrogatepass"), "binary messages"),
            ]
            for payload, phrase in cases:
                await bad.send(payload)
                msgs = await read_messages(bad, lambda ms: any(m["type"] == "error" for m in ms))
                err = next(m for m in msgs if m["type"] == "error")
                assert phrase in err["error"] and err["stream"] is None, (payload, err)
            # the bad client is still served; the good one lost nothing
            await bad.send(json.dumps({"type": "subscribe", "streams": ["talk"]}))
            await read_messages(bad, lambda ms: any(m["type"] == "score" for m in ms))
            got = await read_messages(good, lambda ms: sum(m["type"] == "score" for m in ms) >= 6)
            assert seq_gaps(got) == 0


async def test_oversized_frame_closes_only_that_client_with_1009(tmp_path: Path, scorer: Any) -> None:
    async with running_monitor(small_config(), scorer) as (monitor, _):
        await live_stream(monitor, tmp_path)
        async with connect(ws_url(monitor, "streams=talk")) as good:
            async with connect(ws_url(monitor), max_size=None) as big:
                await big.send("x" * (monitor.cfg.ws.max_message_bytes + 1))
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(big.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            got = await read_messages(good, lambda ms: sum(m["type"] == "score" for m in ms) >= 4)
            assert seq_gaps(got) == 0
        assert await eventually(lambda: not monitor.publisher.clients)


async def test_a_thousand_rapid_connects_and_disconnects(tmp_path: Path, scorer: Any) -> None:
    async with running_monitor(small_config(), scorer) as (monitor, _):
        await live_stream(monitor, tmp_path)
        async with connect(ws_url(monitor, "streams=talk")) as good:
            sem = asyncio.Semaphore(50)
            done = 0

            async def churn(i: int) -> None:
                nonlocal done
                async with sem:
                    try:
                        async with connect(ws_url(monitor), open_timeout=30) as ws:
                            if i % 2:
                                await asyncio.wait_for(ws.recv(), 30)  # half read their hello first
                        done += 1
                    except (ConnectionClosed, OSError):
                        pass  # an abrupt close is fine; the server must not care

            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await asyncio.gather(*(churn(i) for i in range(1000)))
            elapsed = loop.time() - t0
            print(f"\n1000 connect/disconnect cycles in {elapsed:.1f} s, {done} completed cleanly")
            assert done >= 990
            got = await read_messages(good, lambda ms: sum(m["type"] == "score" for m in ms) >= 3)
            assert seq_gaps(got) == 0
        assert await eventually(lambda: not monitor.publisher.clients and monitor.publisher.connections == 0)
        assert monitor.metrics.clients._value.get() == 0
        async with connect(ws_url(monitor)) as again:  # still serving
            assert json.loads(await asyncio.wait_for(again.recv(), 10))["type"] == "hello"


async def test_max_clients_refuses_with_503(tmp_path: Path, scorer: Any) -> None:
    from dataclasses import replace

    cfg = small_config()
    cfg = replace(cfg, ws=replace(cfg.ws, max_clients=3))
    async with running_monitor(cfg, scorer) as (monitor, _):
        from websockets.exceptions import InvalidStatus

        clients = [await connect(ws_url(monitor)) for _ in range(3)]
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(monitor))
        assert refused.value.response.status_code == 503
        for c in clients:
            await c.close()
        assert await eventually(lambda: monitor.publisher.connections == 0)
        async with connect(ws_url(monitor)):
            pass
