"""Access control: tokens on both sides (refused with HTTP 401 or close code 1008), constant-time
comparison, tokens never logged, origin checks, and configurable limits."""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from reliability_helpers import read_messages, running_monitor, small_config, ws_url
from webrtc_peers import ArrayTrack, offer_for, speech_clip
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from samos.monitor import security
from samos.monitor.config import AuthConfig

pytestmark = pytest.mark.timeout(120)
TOKEN = "tok-3f9a1c77e2b54d0e"


def token_config(**http: Any) -> Any:
    cfg = small_config(auth=AuthConfig(token=TOKEN))
    return replace(cfg, http=replace(cfg.http, **http)) if http else cfg


async def offer_body() -> tuple[Any, dict[str, str]]:
    pc = await offer_for(ArrayTrack(speech_clip(2.0)))
    return pc, {"sdp": pc.localDescription.sdp, "type": "offer"}


async def test_subscribers_need_the_token(scorer: Any) -> None:
    async with running_monitor(token_config(), scorer) as (monitor, _):
        with pytest.raises(InvalidStatus) as wrong:
            await connect(ws_url(monitor, "token=nope"))
        assert wrong.value.response.status_code == 401
        for first in ('{"type": "subscribe"}', '{"type": "subscribe", "token": "nope"}', "garbage"):
            async with connect(ws_url(monitor)) as ws:
                await ws.send(first)
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with connect(ws_url(monitor, f"token={TOKEN}")) as ws:
            assert (await read_messages(ws, lambda ms: len(ms) >= 1))[0]["type"] == "hello"
        async with connect(ws_url(monitor)) as ws:
            await ws.send(f'{{"type": "subscribe", "token": "{TOKEN}"}}')
            assert (await read_messages(ws, lambda ms: len(ms) >= 1))[0]["type"] == "hello"


async def test_silent_client_is_closed_with_1008_after_the_auth_timeout(
    scorer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from samos.monitor import publish

    monkeypatch.setattr(publish, "AUTH_TIMEOUT", 0.5)
    async with running_monitor(token_config(), scorer) as (monitor, _), connect(ws_url(monitor)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_publishers_need_the_token(scorer: Any) -> None:
    async with running_monitor(token_config(), scorer) as (monitor, base), aiohttp.ClientSession() as http:
        pc, body = await offer_body()
        try:
            for headers, extra, why in (
                ({}, {}, "missing publisher token"),
                ({"Authorization": "Bearer nope"}, {}, "invalid publisher token"),
                ({}, {"token": "nope"}, "invalid publisher token"),
            ):
                async with http.post(f"{base}/offer", json={**body, **extra}, headers=headers) as r:
                    assert r.status == 401 and (await r.json())["error"] == why
                    assert r.headers["WWW-Authenticate"] == "Bearer"
            assert not monitor.streams
            async with http.post(
                f"{base}/offer", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["name"] in monitor.streams
        finally:
            await pc.close()


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    assert security.token_ok("abc", "abc") and not security.token_ok("abd", "abc")
    assert not security.token_ok("a", "abc") and not security.token_ok(None, "abc")
    assert security.token_ok(None, None)
    assert len(calls) == 3  # every comparison of a presented token went through compare_digest


async def test_tokens_never_reach_the_logs(scorer: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-9d8c7b6a5f"
    async with running_monitor(token_config(), scorer) as (monitor, base), aiohttp.ClientSession() as http:
        for token in (TOKEN, wrong):
            async with http.get(f"{base}/healthz?token={token}") as r:
                assert r.status == 200
            async with http.post(f"{base}/offer?token={token}", json={"sdp": "x", "type": "offer"}) as r:
                assert r.status in (400, 401)
            async with http.post(
                f"{base}/offer",
                json={"sdp": "x", "type": "offer"},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                assert r.status in (400, 401)
        async with connect(ws_url(monitor, f"token={TOKEN}")) as ws:
            await read_messages(ws, lambda ms: len(ms) >= 1)
        with pytest.raises(InvalidStatus):
            await connect(ws_url(monitor, f"token={wrong}"))
        await asyncio.sleep(0.2)
    server_side = [
        r for r in caplog.records if not r.name.startswith(("websockets.client", "aiohttp.client"))
    ]
    text = "\n".join(f"{r.name}: {r.getMessage()}" for r in server_side)
    assert "aiohttp.access" in text and "/offer" in text  # the requests were logged ...
    assert TOKEN not in text and wrong not in text  # ... without their tokens
    assert security.REDACTED in text


@pytest.mark.parametrize(
    ("origin", "status"),
    [("http://evil.example", 403), ("null", 403), ("http://127.0.0.1:1", 403), (None, 400), ("same", 400)],
)
async def test_signalling_origin_check(scorer: Any, origin: str | None, status: int) -> None:
    async with running_monitor(small_config(), scorer) as (_, base), aiohttp.ClientSession() as http:
        headers = {} if origin is None else {"Origin": base if origin == "same" else origin}
        async with http.post(f"{base}/offer", json={"sdp": "x", "type": "offer"}, headers=headers) as r:
            assert r.status == status, await r.text()
            if status == 403:
                assert "may not publish here" in (await r.json())["error"]


async def test_allowed_origins_are_configurable(scorer: Any) -> None:
    cfg = small_config()
    cfg = replace(
        cfg,
        http=replace(cfg.http, allowed_origins=("https://console.example",)),
        ws=replace(cfg.ws, allowed_origins=("https://console.example",)),
    )
    async with running_monitor(cfg, scorer) as (monitor, base), aiohttp.ClientSession() as http:
        headers = {"Origin": "https://console.example"}
        async with http.post(f"{base}/offer", json={"sdp": "x", "type": "offer"}, headers=headers) as r:
            assert r.status == 400  # past the origin check, refused for its SDP
        async with connect(ws_url(monitor), origin="https://console.example") as ws:  # type: ignore[arg-type]
            assert (await read_messages(ws, lambda ms: len(ms) >= 1))[0]["type"] == "hello"
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(monitor), origin="https://evil.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        page = f"http://localhost:{monitor.http_address[1]}"  # the overlay page, by another loopback name
        async with connect(ws_url(monitor), origin=page) as ws:  # type: ignore[arg-type]
            assert (await read_messages(ws, lambda ms: len(ms) >= 1))[0]["type"] == "hello"


async def test_limits_come_from_the_config(scorer: Any) -> None:
    cfg = token_config(max_body_bytes=2048, max_peers=1)
    async with running_monitor(cfg, scorer) as (monitor, base), aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.post(
            f"{base}/offer", json={"sdp": "v=0" + "x" * 3000, "type": "offer"}, headers=auth
        ) as r:
            assert r.status == 413 and "too large" in (await r.json())["error"]
        pc1, body = await offer_body()
        pc2, body2 = await offer_body()
        try:
            async with http.post(f"{base}/offer", json=body, headers=auth) as r:
                assert r.status == 200
            async with http.post(f"{base}/offer", json=body2, headers=auth) as r:
                assert r.status == 503 and "limit 1" in (await r.json())["error"]
        finally:
            await pc1.close()
            await pc2.close()


def test_origin_rule() -> None:
    ok = security.origin_allowed
    assert ok(None, "127.0.0.1:8080")
    assert ok("http://127.0.0.1:8080", "127.0.0.1:8080") and ok("http://localhost:8080", "127.0.0.1:8080")
    assert not ok("http://127.0.0.1:9", "127.0.0.1:8080") and ok(
        "http://127.0.0.1:9", "127.0.0.1:8765", same_port=False
    )
    assert ok("https://mon.example", "mon.example") and not ok("http://mon.example", "mon.example:443")
    assert not ok("http://evil.example", "mon.example") and ok("http://evil.example", "mon.example", ["*"])
    assert not ok("null", "mon.example") and not ok("http://x:bad", "x")


def test_redaction() -> None:
    line = 'GET /offer?name=a&token=abc123&x=1 HTTP/1.1" Authorization: Bearer abc123 {"token": "abc123"}'
    out = security.redact(line, ["abc123"])
    assert "abc123" not in out and out.count(security.REDACTED) == 3 and "name=a" in out
