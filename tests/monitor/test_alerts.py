from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiohttp import web

from samos.monitor.alerts import AlertState, JsonlLog, SpeechLostState, Webhook

Value = float | None  # a scored window's rolling MOS, or None for a window without a MOS


def run(state: AlertState, values: Sequence[Value], t0: int = 0) -> list[tuple[int, str, str]]:
    """Feed one window a second; the (t, event, reason) of each change."""
    out = []
    for t, v in enumerate(values, start=t0):
        e = state.update(float(t), v, scored=v is not None)
        if e is not None:
            assert e.kind == "low_mos"
            out.append((t, e.event, e.reason))
    return out


def test_raise_needs_min_duration_and_clear_needs_hysteresis() -> None:
    s = AlertState(threshold=3.0, hysteresis=0.5, min_duration=2.0)
    values = [4.0, 2.9, 2.8, 3.1, 2.0, 2.0, 2.0, 3.2, 3.4, 3.6, 3.6, 3.6, 3.6]
    # dips at t=1-2 last 1 s (no alert); t=4..6 lasts 2 s -> raise at 6; 3.2/3.4 are inside the
    # hysteresis band; >= 3.5 from t=9 -> clear at 11
    assert run(s, values) == [(6, "raise", "low_mos"), (11, "clear", "recovered")]
    assert not s.active


def test_unscored_windows_do_not_restart_a_pending_raise() -> None:
    # bad from t=0, then the call goes quiet (no MOS) at t=1-3, bad again at t=4: 4 s below 3.0
    s = AlertState(3.0, 0.0, 3.0)
    assert run(s, [2.0, None, None, None, 2.0]) == [(4, "raise", "low_mos")]
    # only scored windows complete it: no raise while nothing is scored, however long
    s = AlertState(3.0, 0.0, 3.0)
    assert run(s, [2.0, None, None, None, None, None]) == [] and s.duration(5.0) == 5.0


def test_a_good_scored_window_does_reset_a_pending_raise() -> None:
    s = AlertState(3.0, 0.0, 2.0)
    assert run(s, [2.0, 2.0, 3.5, 2.0, 2.0, 2.0]) == [(5, "raise", "low_mos")]


def test_an_open_alert_clears_only_on_good_scores_not_on_silence() -> None:
    s = AlertState(3.0, 0.5, 1.0)
    assert run(s, [2.0, 2.0]) == [(1, "raise", "low_mos")]
    assert run(s, [None] * 30, t0=2) == [] and s.active  # no stale limit: stays open
    assert run(s, [3.2, 3.6, None, 3.6], t0=32) == [(35, "clear", "recovered")]  # 3.6 at 33 and 35


def test_an_open_alert_clears_for_lack_of_scores_after_the_stale_time() -> None:
    s = AlertState(3.0, 0.5, 1.0, stale_seconds=10.0)
    assert run(s, [2.0, 2.0]) == [(1, "raise", "low_mos")]
    got = [e for t in range(2, 20) if (e := s.update(float(t), None, scored=False)) is not None]
    assert len(got) == 1 and not s.active
    e = got[0]
    assert (e.event, e.reason, e.duration_seconds) == ("clear", "no_scores", 10.0)
    assert "lack of scores" in e.message and "unknown" in e.message
    # the next bad stretch raises afresh, after its own min_duration
    assert run(s, [2.0, 2.0], t0=20) == [(21, "raise", "low_mos")]


def test_a_pending_raise_is_forgotten_after_the_stale_time() -> None:
    s = AlertState(3.0, 0.0, 3.0, stale_seconds=10.0)
    assert run(s, [2.0, *[None] * 11, 2.0]) == []  # the gap (t=1..11) outlived the stale time
    assert run(s, [2.0, 2.0, 2.0], t0=13) == [(15, "raise", "low_mos")]  # 12 .. 15


def speech_run(state: SpeechLostState, windows: Sequence[tuple[str, Value]], t0: int = 0) -> list[tuple]:
    out = []
    for t, (status, mos) in enumerate(windows, start=t0):
        e = state.update(float(t), status, mos, -30.0)
        if e is not None:
            assert e.kind == "no_speech"
            out.append((t, e.event, e.reason))
    return out


def test_no_speech_alert_after_speech_then_noise() -> None:
    s = SpeechLostState(after_seconds=5.0, clear_level=3.0)
    talk, noise, quiet = ("ok", 3.5), ("no_speech", None), ("silence", None)
    assert speech_run(s, [noise] * 10) == []  # never spoke: nothing lost
    assert speech_run(s, [talk] * 3 + [noise] * 3 + [quiet] * 3, t0=10) == [(17, "raise", "no_speech")]
    assert s.active


def test_no_speech_alert_clears_only_when_speech_is_back_and_good() -> None:
    s = SpeechLostState(after_seconds=2.0, clear_level=3.0)
    got = speech_run(
        s,
        [("ok", 3.5), ("no_speech", None), ("no_speech", None)]  # raise at 2
        + [("ok", 2.2), ("dropped", 2.2), ("ok", 2.9)]  # speech back but bad: stays open
        + [("ok", 3.1)],  # good again: clear at 6
    )
    assert got == [(2, "raise", "no_speech"), (6, "clear", "speech")]


def test_no_speech_message_says_what_and_how_loud() -> None:
    s = SpeechLostState(after_seconds=1.0, clear_level=3.0)
    s.update(0.0, "ok", 3.5, -20.0)
    e = s.update(1.0, "no_speech", 3.5, -31.6)
    assert e is not None and e.message == "no speech at -32 dBFS for 1 s after speech"
    s2 = SpeechLostState(after_seconds=1.0, clear_level=3.0)
    s2.update(0.0, "ok", 3.5, -20.0)
    e2 = s2.update(1.0, "silence", 3.5, -80.0)
    assert e2 is not None and e2.message.startswith("dead air")


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


def test_no_speech_alert_needs_good_speech_for_min_duration_to_clear() -> None:
    s = SpeechLostState(after_seconds=2.0, clear_level=3.0, min_duration=2.0)
    talk, noise = ("ok", 3.5), ("no_speech", None)
    got = speech_run(s, [talk, noise, noise] + [talk, talk, noise] + [talk, ("dropped", None), talk, talk])
    # raise at 2; good at 3-4 is cut short by noise at 5; good from 6 (a dropped window at 7 is no
    # evidence) clears at 8
    assert got == [(2, "raise", "no_speech"), (8, "clear", "speech")]
