"""The websocket server with real websockets clients over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from samos.monitor.metrics import MonitorMetrics
from samos.monitor.publish import Publisher, token_ok
from samos.monitor.schema import StreamMessages


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Publisher, str]]:
    kw: dict[str, Any] = getattr(request, "param", {})
    pub = Publisher(MonitorMetrics(), **kw)
    host, port = await pub.start("127.0.0.1", 0)
    yield pub, f"ws://{host}:{port}/"
    await pub.close(drain_timeout=0.1)


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def wait_clients(pub: Publisher, n: int) -> None:
    for _ in range(200):
        if len(pub.clients) == n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {n} clients, have {len(pub.clients)}")


def test_token_compare() -> None:
    assert token_ok(None, None) and token_ok("x", None)
    assert token_ok("s3cret", "s3cret") and not token_ok("s3cre", "s3cret") and not token_ok(None, "s3cret")


async def test_hello_replay_and_subscriptions(server: tuple[Publisher, str]) -> None:
    pub, url = server
    a, b = StreamMessages("a"), StreamMessages("b")
    pub.publish(a.stream_start("file", 16_000, 4.0, 1.0, {}))
    pub.publish(b.stream_start("file", 16_000, 4.0, 1.0, {}))
    async with connect(url) as all_, connect(url + "?streams=b") as only_b, connect(url) as by_msg:
        await by_msg.send(json.dumps({"type": "subscribe", "streams": ["a"]}))
        hello = await recv_json(all_)
        assert hello["type"] == "hello" and hello["streams"] == ["a", "b"]
        assert [(await recv_json(all_))["stream"] for _ in range(2)] == ["a", "b"]  # live streams replayed
        assert (await recv_json(only_b))["type"] == "hello"
        assert (await recv_json(only_b))["stream"] == "b"
        await wait_clients(pub, 3)
        await asyncio.sleep(0.1)  # the subscribe message is applied
        pub.publish(a.stream_end(reason="ended", windows=0, seconds=0.0, rolling_mos=None))
        pub.publish(b.stream_end(reason="ended", windows=0, seconds=0.0, rolling_mos=None))
        got = [await recv_json(all_) for _ in range(2)]
        assert [(m["stream"], m["type"], m["seq"]) for m in got] == [
            ("a", "stream_end", 1),
            ("b", "stream_end", 1),
        ]
        assert (await recv_json(only_b))["stream"] == "b"
        msgs = []
        while (m := await recv_json(by_msg))["type"] != "stream_end":
            msgs.append(m)
        assert m["stream"] == "a"
        assert pub.metrics.get_sample_value("samos_ws_clients") == 3


@pytest.mark.parametrize("server", [{"token": "s3cret"}], indirect=True)
async def test_token_in_query_or_first_message(server: tuple[Publisher, str]) -> None:
    _, url = server
    with pytest.raises(InvalidStatus) as e:
        async with connect(url + "?token=wrong"):
            pass
    assert e.value.response.status_code == 401
    async with connect(url + "?token=s3cret") as ws:
        assert (await recv_json(ws))["type"] == "hello"
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "token": "s3cret"}))
        assert (await recv_json(ws))["type"] == "hello"
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "token": "nope"}))
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.parametrize("server", [{"client_queue": 8}], indirect=True)
async def test_slow_client_loses_oldest_messages_and_is_told(server: tuple[Publisher, str]) -> None:
    pub, url = server
    s = StreamMessages("a")
    n, pad = 300, "x" * 50_000
    async with connect(url, max_queue=1) as slow, connect(url, max_size=None) as fast:
        await wait_clients(pub, 2)
        fast_got: list[dict[str, Any]] = []

        async def drain_fast() -> None:
            while len(fast_got) < n + 1:
                fast_got.append(await recv_json(fast))

        reader = asyncio.create_task(drain_fast())
        for i in range(n):
            msg = s.stream_start("file", 16_000, 4.0, 1.0, {"i": i, "pad": pad})
            pub.publish(msg)
            await asyncio.sleep(0.002)  # a pace the fast client keeps up with, even on a busy machine
        await asyncio.wait_for(reader, 20)
        assert [m["seq"] for m in fast_got[1:]] == list(range(n))  # the fast client lost nothing
        dropped = pub.metrics.get_sample_value("samos_ws_messages_dropped_total")
        slow_client = max(pub.clients, key=lambda c: c.dropped_total)
        assert dropped and dropped == slow_client.dropped_total > 0
        seqs: list[int] = []
        told = 0
        while not seqs or seqs[-1] != n - 1:
            m = await recv_json(slow)
            told += m.get("dropped_messages", 0)
            if m["type"] != "hello":
                seqs.append(m["seq"])
        assert told == dropped and len(seqs) + told == n
        assert seqs == sorted(seqs)


@pytest.mark.parametrize("server", [{"batch_seconds": 0.3}], indirect=True)
async def test_messages_published_together_reach_a_client_in_one_write(server: tuple[Publisher, str]) -> None:
    pub, url = server
    s = StreamMessages("a")
    async with connect(url) as ws:
        assert (await recv_json(ws))["type"] == "hello"
        await wait_clients(pub, 1)
        (client,) = pub.clients
        writes: list[int] = []
        transport = client.ws.transport
        real_write = transport.write

        def counting_write(data: bytes) -> None:
            writes.append(len(data))
            real_write(data)

        transport.write = counting_write  # type: ignore[method-assign]
        for i in range(5):
            pub.publish(s.stream_start("file", 16_000, 4.0, 1.0, {"i": i}))
        assert not writes  # nothing is written before the batch is due
        got = [await recv_json(ws) for _ in range(5)]
        assert [(m["seq"], m["model"]["i"]) for m in got] == [(i, i) for i in range(5)]
        assert len(writes) == 1  # five frames, one socket write


@pytest.mark.parametrize("server", [{"batch_seconds": 0.3}], indirect=True)
async def test_a_client_joining_before_a_batch_is_sent_gets_each_message_once(
    server: tuple[Publisher, str],
) -> None:
    pub, url = server
    a = StreamMessages("a")
    pub.publish(a.stream_start("file", 16_000, 4.0, 1.0, {}))  # pending when the client joins
    async with connect(url) as ws:
        assert (await recv_json(ws))["type"] == "hello"
        start = await recv_json(ws)  # replayed from the live streams
        assert start["type"] == "stream_start" and start["seq"] == 0
        await wait_clients(pub, 1)
        pub.publish(a.stream_end(reason="ended", windows=0, seconds=0.0, rolling_mos=None))
        end = await recv_json(ws)
        assert end["type"] == "stream_end" and end["seq"] == 1  # no second stream_start before it


@pytest.mark.parametrize("server", [{"batch_seconds": 1.0}], indirect=True)
async def test_close_sends_what_is_pending(server: tuple[Publisher, str]) -> None:
    pub, url = server
    a = StreamMessages("a")
    async with connect(url) as ws:
        assert (await recv_json(ws))["type"] == "hello"
        await wait_clients(pub, 1)
        pub.publish(a.stream_start("file", 16_000, 4.0, 1.0, {}))
        await pub.close(drain_timeout=1.0)  # well before the 1 s batch is due
        assert (await recv_json(ws, timeout=0.5))["type"] == "stream_start"


async def test_a_write_that_fails_for_one_client_does_not_stop_the_others(
    server: tuple[Publisher, str],
) -> None:
    pub, url = server
    a = StreamMessages("a")
    async with connect(url) as first, connect(url) as second:
        for ws in (first, second):
            assert (await recv_json(ws))["type"] == "hello"
        await wait_clients(pub, 2)
        broken = next(iter(pub.clients))  # whichever the fan-out meets first

        def fail(data: bytes) -> None:
            raise RuntimeError("transport gone")

        broken.ws.transport.write = fail  # type: ignore[method-assign]
        for _ in range(3):
            pub.publish(a.stream_start("file", 16_000, 4.0, 1.0, {}))
        healthy = second if broken.ws.remote_address == first.local_address else first
        assert [(await recv_json(healthy))["seq"] for _ in range(3)] == [0, 1, 2]
