"""Headless Chromium end to end: the publish page sends the fake microphone (a speech wav) over
WebRTC to the monitor, and both the publish page and the overlay show the stream's score, read from
the DOM over the DevTools Protocol.

The fixtures live here rather than in a conftest.py: other test folders import their conftest as the
module ``conftest``, and a second one would shadow theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf
from aiohttp import web
from cdp_browser import Browser, monitor_helpers, require_chromium

from samos.monitor.app import Monitor
from samos.monitor.config import AuthConfig, HttpConfig, MonitorConfig, WebsocketConfig, WindowConfig
from samos.monitor.http import SignallingLimits, build_http_app
from samos.monitor.sources.file import FileSource
from samos.monitor.sources.webrtc import WebRTCOptions

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

SCORE_NUMBER = r"/^[1-5]\.\d\d$/"


# ------------------------------------------------------------------------------------------ fixtures
P835_DIR = Path("/work/shared/data/p835/fb48k")
RATE = 48_000


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return require_chromium()


@pytest.fixture(scope="session")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real runtime Scorer on the monitor tests' tiny level-dependent ONNX model (CPU, 1 thread)."""
    from samos.runtime.scorer import Scorer

    model = monitor_helpers().make_level_model(tmp_path_factory.mktemp("model") / "level.onnx")
    return Scorer(model, providers=("cpu",), threads=1)


@pytest.fixture(scope="session")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48 kHz 16-bit wav for Chromium's fake microphone: 0.5 s of silence (the browser loses the
    first ~0.3 s) then real speech (a P.835 recording), or syllable-like tone bursts without it."""
    files = sorted(P835_DIR.glob("c0_*.wav"))
    if files:
        audio, sr = sf.read(str(files[0]), dtype="float32", always_2d=True)
        speech = audio.mean(axis=1)
        assert sr == RATE
    else:
        t = np.arange(4 * RATE) / RATE
        speech = (0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    audio = np.concatenate([np.zeros(RATE // 2, np.float32), speech])
    path = tmp_path_factory.mktemp("mic") / "speech.wav"
    sf.write(str(path), audio, RATE, subtype="PCM_16")
    return path


@pytest.fixture
async def browser(chromium_path: str, microphone_wav: Path) -> AsyncIterator[Browser]:
    b = Browser(chromium_path, microphone_wav)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


def card_score(stream: str) -> str:
    """JS: the overlay card's MOS text for ``stream`` when it is a number, else null."""
    return (
        f"(() => {{ const c = document.querySelector('.stream[data-stream=\"{stream}\"]');"
        " const t = c && c.querySelector('.mos').textContent;"
        f" return {SCORE_NUMBER}.test(t || '') ? t : null; }})()"
    )


@contextlib.asynccontextmanager
async def running(scorer: Any, token: str | None = None) -> AsyncIterator[tuple[Monitor, str]]:
    """A started Monitor with its websocket and HTTP app on free ports of 127.0.0.1."""
    cfg = MonitorConfig(
        window=WindowConfig(window_seconds=1.0, hop_seconds=0.5, min_final_seconds=0.5),
        ws=WebsocketConfig(host="127.0.0.1", port=0),
        http=HttpConfig(enabled=False),
        auth=AuthConfig(token=token),
    )
    monitor = Monitor(cfg, scorer)
    await monitor.start()
    limits = SignallingLimits(webrtc=WebRTCOptions(connect_timeout=20.0, inactivity_timeout=3.0))
    runner = web.AppRunner(build_http_app(monitor, cfg, limits), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield monitor, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await monitor.stop()


async def test_publish_page_and_overlay_show_the_browser_stream_score(scorer: Any, browser: Browser) -> None:
    async with running(scorer) as (monitor, base):
        page = await browser.open(f"{base}/?name=chrome&autostart=1")
        state = "document.getElementById('state')?.textContent"
        score = await page.wait_for(
            f"(() => {{ const t = document.getElementById('score')?.textContent;"
            f" return {SCORE_NUMBER}.test(t || '') ? t : null; }})()",
            timeout=40,
            what="the publish page shows no numeric score",
            debug=state,
        )
        assert 1.0 <= float(score) <= 5.0
        assert await page.evaluate("document.body.dataset.stream") == "chrome"
        assert await page.evaluate("document.body.dataset.state") == "live"
        assert (await page.evaluate(state)).startswith("Live")
        token_field = "getComputedStyle(document.getElementById('token-field')).display"
        assert await page.evaluate(token_field) == "none"  # the monitor needs no token
        assert "chrome" in monitor.streams and monitor.streams["chrome"].source.kind == "webrtc"
        band = await page.evaluate("document.getElementById('score').dataset.band")
        assert band in ("good", "fair", "poor", "bad")

        overlay = await browser.open(f"{base}/overlay?stream=chrome")
        card = "document.querySelector('.stream[data-stream=\"chrome\"]')"
        shown = await overlay.wait_for(
            card_score("chrome"),
            timeout=20,
            what="the overlay shows no score for stream 'chrome'",
            debug="document.body.innerText",
        )
        assert 1.0 <= float(shown) <= 5.0
        diagnostics = await overlay.evaluate(f"{card}.querySelector('.diag').textContent")
        assert "dBov" in diagnostics
        assert await overlay.evaluate(f"{card}.dataset.band") in ("good", "fair", "poor", "bad")
        assert await overlay.evaluate("getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"
        assert await overlay.evaluate("document.querySelectorAll('.stream').length") == 1
        assert await overlay.evaluate("document.body.dataset.ws") == "open"


async def test_overlay_shows_every_stream_and_reconnects(
    scorer: Any, browser: Browser, microphone_wav: Path
) -> None:
    async with running(scorer) as (monitor, base):
        for name in ("left", "right"):
            await monitor.add_source(
                await FileSource.open(str(microphone_wav), name=name, realtime=True, loop=True)
            )
        overlay = await browser.open(f"{base}/overlay")
        for name in ("left", "right"):
            await overlay.wait_for(card_score(name), 20, f"no score for {name!r}", "document.body.innerText")
        points = await overlay.evaluate(
            "(() => { const c = document.querySelector('canvas.spark'); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
            " for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })()"
        )
        assert points > 20  # the sparkline was drawn

        # The websocket server goes away: the overlay notices, backs off, and comes back by itself.
        assert monitor.ws_address is not None
        host, port = monitor.ws_address
        await monitor.publisher.close(drain_timeout=0.1)
        await overlay.wait_for("document.body.dataset.ws === 'reconnecting'", 10, "no reconnect attempt")
        await overlay.evaluate(
            "document.querySelectorAll('.stream .mos').forEach(e => e.textContent = 'stale')"
        )
        await monitor.publisher.start(host, port)
        await overlay.wait_for("document.body.dataset.ws === 'open'", 15, "the overlay did not reconnect")
        for name in ("left", "right"):
            await overlay.wait_for(card_score(name), 15, f"no fresh score for {name!r} after reconnecting")


async def test_publish_page_with_a_token(scorer: Any, browser: Browser) -> None:
    async with running(scorer, token="t0ken") as (monitor, base):
        refused = await browser.open(f"{base}/?name=nokey&autostart=1")
        message = await refused.wait_for(
            "document.body.dataset.state === 'error' && document.getElementById('state').textContent",
            timeout=20,
            what="the page did not report the refused offer",
            debug="document.getElementById('state')?.textContent",
        )
        assert "missing publisher token" in message
        assert (
            await refused.evaluate("getComputedStyle(document.getElementById('token-field')).display")
            != "none"
        )
        assert "nokey" not in monitor.streams

        page = await browser.open(f"{base}/?name=keyed&token=t0ken&autostart=1")
        score = await page.wait_for(
            f"(() => {{ const t = document.getElementById('score')?.textContent;"
            f" return {SCORE_NUMBER}.test(t || '') ? t : null; }})()",
            timeout=40,
            what="no score with the token (offer and websocket both need it)",
            debug="document.getElementById('state')?.textContent",
        )
        assert 1.0 <= float(score) <= 5.0


async def test_publish_page_over_whip(scorer: Any, browser: Browser) -> None:
    """``?whip=1``: the page publishes with WHIP (POST /whip, application/sdp), shows the score, and
    its Stop button DELETEs the session, which ends the stream at once."""
    async with running(scorer, token="t0ken") as (monitor, base):
        page = await browser.open(f"{base}/?name=chromewhip&autostart=1&whip=1&token=t0ken")
        score = await page.wait_for(
            f"(() => {{ const t = document.getElementById('score')?.textContent;"
            f" return {SCORE_NUMBER}.test(t || '') ? t : null; }})()",
            timeout=40,
            what="the publish page (WHIP) shows no numeric score",
            debug="document.getElementById('state')?.textContent",
        )
        assert 1.0 <= float(score) <= 5.0
        assert await page.evaluate("document.body.dataset.stream") == "chromewhip"
        assert monitor.streams["chromewhip"].source.kind == "webrtc"

        async def metric(prefix: str) -> str:
            async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as r:
                return next((x for x in (await r.text()).splitlines() if x.startswith(prefix)), "")

        async def within(seconds: float, check: Any) -> bool:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while True:
                if await check():
                    return True
                if loop.time() > deadline:
                    return False
                await asyncio.sleep(0.05)

        async def deleted() -> bool:
            return (await metric('samos_ingest_calls_total{kind="whip",result="deleted"}')).endswith(" 1.0")

        async def ended() -> bool:
            return "chromewhip" not in monitor.streams

        assert await metric("samos_whip_sessions ") == "samos_whip_sessions 1.0"
        await page.evaluate("document.getElementById('stop').click()")
        assert await within(5.0, deleted)  # the page DELETEd its session (not a connection timeout)
        assert await within(2.0, ended)
