from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiohttp import web

from samos.monitor.alerts import AlertState, JsonlLog, Webhook


def run(state: AlertState, values: Sequence[float | None]) -> list[tuple[int, str]]:
    return [(t, e) for t, v in enumerate(values) if (e := state.update(float(t), v)) is not None]


def test_raise_needs_min_duration_and_clear_needs_hysteresis() -> None:
    s = AlertState(threshold=3.0, hysteresis=0.5, min_duration=2.0)
    values = [4.0, 2.9, 2.8, 3.1, 2.0, 2.0, 2.0, 3.2, 3.4, 3.6, 3.6, 3.6, 3.6]
    # dips at t=1-2 last 1 s (no alert); t=4..6 lasts 2 s -> raise at 6; 3.2/3.4 are inside the
    # hysteresis band; >= 3.5 from t=9 -> clear at 11
    assert run(s, values) == [(6, "raise"), (11, "clear")]
    assert not s.active


def test_missing_values_reset_the_timer() -> None:
    s = AlertState(3.0, 0.0, 1.0)
    assert run(s, [2.0, None, 2.0, 2.0]) == [(3, "raise")]


def test_jsonl_log_is_flushed_per_record(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path / "sub" / "log.jsonl")
    log.write({"type": "score", "mos": 3.5})
    assert json.loads((tmp_path / "sub" / "log.jsonl").read_text()) == {"type": "score", "mos": 3.5}
    log.write({"type": "alert"})
    log.close()
    assert len((tmp_path / "sub" / "log.jsonl").read_text().splitlines()) == 2


async def test_webhook_posts_json_and_survives_failures(caplog: pytest.LogCaptureFixture) -> None:
    got: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=500 if len(got) > 1 else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        w = Webhook(f"http://127.0.0.1:{port}/hook", timeout=2.0)
        w.post({"type": "alert", "stream": "a", "seq": 1})
        w.post({"type": "alert", "stream": "a", "seq": 2})
        dead = Webhook("http://127.0.0.1:9/nothing", timeout=1.0)  # nothing listens on port 9
        with caplog.at_level(logging.WARNING):
            dead.post({"type": "alert", "stream": "b", "seq": 1})
            await asyncio.gather(w.close(), dead.close())
        assert sorted(m["seq"] for m in got) == [1, 2]
        assert w.failed == 1 and dead.failed == 1
        assert "webhook" in caplog.text
    finally:
        await runner.cleanup()
