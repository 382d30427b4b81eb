"""Headless Chromium on the operator's console (/console): 32 live streams from files of different
quality, worst first; a stream that degrades rises to the top with its alert; a reload shows the
history; a timeline opens. Scored by the real runtime on the tests' level model (louder = worse).

``SAMOS_SCREENSHOTS=DIR`` saves console.png and timeline.png there (docs/ holds the published ones).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp import web
from cdp_browser import Browser, Cdp, monitor_helpers, require_chromium

from samos.monitor.app import Monitor
from samos.monitor.config import (
    AggregateConfig,
    AlertConfig,
    HttpConfig,
    MonitorConfig,
    WebsocketConfig,
    WindowConfig,
)
from samos.monitor.http import build_http_app
from samos.monitor.sources.file import FileSource

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

RATE = 16_000
STREAMS = 32
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


@pytest.fixture(scope="module")
def level_scorer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from samos.runtime.scorer import Scorer

    model = monitor_helpers().make_level_model(tmp_path_factory.mktemp("model") / "level.onnx")
    return Scorer(model, providers=("cpu",), threads=1)


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """32 call recordings (16 kHz wav): steady ones whose level sets their quality, and 'degrading',
    good for 3 s and then bad until its end."""
    speech_like = monitor_helpers().speech_like
    root = tmp_path_factory.mktemp("calls")
    out = {}
    levels = np.geomspace(0.004, 0.08, STREAMS - 2)
    for i, level in enumerate(levels):
        out[f"call-{i:02d}"] = speech_like(30.0, RATE, level=float(level), seed=i)
    out["degrading"] = np.concatenate(
        [speech_like(3.0, RATE, level=0.004, seed=99), speech_like(27.0, RATE, level=0.4, seed=98)]
    )
    out[HOSTILE] = speech_like(30.0, RATE, level=0.01, seed=77)
    paths = {}
    for j, (name, audio) in enumerate(out.items()):
        paths[name] = root / f"{j:02d}.wav"
        sf.write(str(paths[name]), audio, RATE, subtype="PCM_16")
    return paths


@contextlib.asynccontextmanager
async def console_monitor(scorer: Any) -> AsyncIterator[tuple[Monitor, str]]:
    cfg = MonitorConfig(
        window=WindowConfig(window_seconds=1.0, hop_seconds=0.5),
        aggregate=AggregateConfig(horizon_seconds=2.0),
        alerts=AlertConfig(threshold=2.5, min_duration_seconds=1.0),
        ws=WebsocketConfig(host="127.0.0.1", port=0),
        http=HttpConfig(enabled=False),
    )
    monitor = Monitor(cfg, scorer)
    await monitor.start()
    runner = web.AppRunner(build_http_app(monitor, cfg), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield monitor, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await monitor.stop()


async def screenshot(page: Cdp, name: str) -> None:
    folder = os.environ.get("SAMOS_SCREENSHOTS")
    if not folder:
        return
    shot = await page.call("Page.captureScreenshot", format="png")
    await asyncio.to_thread(Path(folder, name).write_bytes, base64.b64decode(shot["data"]))


TILES = "[...document.querySelectorAll('#grid .tile')]"
ORDER_OK = (
    f"(() => {{ const r = {TILES}.filter(t => t.dataset.ended !== 'true' && t.dataset.alert !== 'true')"
    ".map(t => parseFloat(t.dataset.rolling)).filter(Number.isFinite);"
    " return r.length >= 25 && r.every((v, i) => i === 0 || r[i - 1] <= v + 0.15); })()"
)


async def test_console_orders_alerts_reloads_and_opens_a_timeline(
    chromium: str, level_scorer: Any, calls: dict[str, Path]
) -> None:
    browser = Browser(chromium, next(iter(calls.values())))
    await browser.start()
    try:
        async with console_monitor(level_scorer) as (monitor, base):
            for name, path in calls.items():
                await monitor.add_source(await FileSource.open(str(path), name=name, realtime=True))
            page = await browser.open(f"{base}/console")
            await page.call(
                "Emulation.setDeviceMetricsOverride",
                width=1400,
                height=1000,
                deviceScaleFactor=1,
                mobile=False,
            )
            await page.wait_for(f"{TILES}.length === {STREAMS}", 20, "32 tiles", "document.body.innerText")
            # worst rolling MOS first (the order is refreshed every second while scores move)
            await page.wait_for(
                ORDER_OK, 20, "tiles in rolling-MOS order", f"{TILES}.map(t => t.dataset.rolling)"
            )
            # the stream that turns bad rises to the top with its alert open
            top = await page.wait_for(
                f"(() => {{ const t = {TILES}[0];"
                " return t && t.dataset.alert === 'true' && t.dataset.name; })()",
                20,
                "an alert at the top",
                f"{TILES}.slice(0, 3).map(t => t.dataset.name + t.dataset.alert)",
            )
            assert top == "degrading"
            assert "ALERT" in await page.evaluate(f"{TILES}[0].querySelector('.state').textContent")
            assert await page.evaluate(f"{TILES}[0].dataset.band") in ("poor", "bad")
            # names are text, never markup
            hostile = await page.evaluate(
                f"(() => {{ const t = {TILES}.find(t => t.dataset.name === {HOSTILE!r});"
                " return [t.querySelector('.name').textContent, t.querySelectorAll('img').length]; })()"
            )
            assert hostile == [HOSTILE, 0]
            # the filter
            await page.evaluate(
                "(() => { const f = document.getElementById('filter');"
                " f.value = 'degr'; f.dispatchEvent(new Event('input')); })()"
            )
            assert await page.evaluate(f"{TILES}.filter(t => !t.hidden).map(t => t.dataset.name)") == [
                "degrading"
            ]
            await page.evaluate(
                "(() => { const f = document.getElementById('filter');"
                " f.value = ''; f.dispatchEvent(new Event('input')); })()"
            )
            await asyncio.sleep(2.0)
            await screenshot(page, "console.png")

            # a reload shows what happened before it, then continues live
            windows_before = len(monitor.history.messages("degrading") or [])
            await page.call("Page.reload")
            await page.wait_for(f"{TILES}.length === {STREAMS}", 20, "tiles after reload")
            spark = await page.evaluate(
                "(() => { const c = document.querySelector('.tile[data-name=\"degrading\"] canvas.spark');"
                " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
                " for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })()"
            )
            assert spark > 50  # the sparkline came back from /api/streams, not only from new messages
            await page.evaluate("document.querySelector('.tile[data-name=\"degrading\"]').click()")
            shown = await page.wait_for(
                "document.getElementById('timeline').dataset.loaded === 'true'"
                " && parseInt(document.getElementById('timeline').dataset.windows || '0')",
                20,
                "the timeline with its history",
            )
            assert shown >= windows_before - 2  # the past windows, from before the reload
            assert "alerts" in await page.evaluate("document.getElementById('tl-state').textContent")
            rows = await page.evaluate("document.querySelectorAll('#tl-table tbody tr').length")
            assert rows > 0
            await page.wait_for(
                f"parseInt(document.getElementById('timeline').dataset.windows) > {shown}",
                10,
                "the timeline continuing live",
            )
            await screenshot(page, "timeline.png")
            assert "stream=degrading" in await page.evaluate("location.search")
    finally:
        await browser.stop()
