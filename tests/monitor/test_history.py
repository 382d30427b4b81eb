"""History: the console's state and bounded per-stream message rings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from samos.config import ConfigError
from samos.monitor.history import History, HistoryConfig
from samos.monitor.schema import StreamMessages, encode


def feed(h: History, msg: dict[str, Any], now: float = 0.0) -> None:
    h.record(msg, encode(msg), now)


def scored(m: StreamMessages, i: int, mos: float, hop: float = 1.0) -> dict[str, Any]:
    return m.score(
        index=i,
        t_start=i * hop,
        t_end=i * hop + 4,
        status="ok",
        mos=mos,
        mos_std=0.3,
        rolling_mos=mos,
        rolling_std=0.3,
        diagnostics={"level_db": -20.0},
        t_capture=0.0,
        latency_ms=1.0,
    )


def test_state_alerts_history_and_end() -> None:
    h = History()
    m = StreamMessages("alice")
    feed(h, m.stream_start("webrtc", 48_000, 4.0, 1.0, {}), now=100.0)
    for i in range(5):
        feed(h, scored(m, i, 4.0 - i * 0.5), now=101.0 + i)
    feed(
        h,
        m.alert(event="raise", t=8.0, rolling_mos=2.0, threshold=2.5, duration_seconds=5.0, message="low"),
        now=106.0,
    )
    feed(
        h,
        m.alert(
            event="raise",
            t=8.0,
            rolling_mos=2.0,
            threshold=2.5,
            duration_seconds=5.0,
            kind="no_speech",
            reason="no_speech",
        ),
        now=106.0,
    )
    feed(
        h,
        m.alert(
            event="clear",
            t=8.0,
            rolling_mos=2.0,
            threshold=2.5,
            duration_seconds=0.0,
            kind="no_speech",
            reason="speech",
        ),
        now=106.0,
    )
    [state] = h.streams(now=106.0)
    assert state["name"] == "alice" and state["kind"] == "webrtc" and state["rate"] == 48_000
    assert state["rolling_mos"] == 2.0 and state["status"] == "ok" and state["ended"] is None
    assert state["alerts"] == {"low_mos": {"since": 106.0, "since_t": 8.0, "message": "low"}}
    assert state["recent"] == [4.0, 3.5, 3.0, 2.5, 2.0]
    texts = h.messages("alice")
    assert [json.loads(t)["type"] for t in texts] == ["score"] * 5 + ["alert"] * 3
    assert [json.loads(t)["seq"] for t in h.messages("alice", since=3)] == [4, 5, 6, 7, 8]
    feed(h, m.stream_summary(reason="ended", summary={"windows": 5}), now=107.0)
    feed(h, m.stream_end(reason="ended", windows=5, seconds=9.0, rolling_mos=2.0), now=107.0)
    [state] = h.streams(now=108.0)
    assert state["ended"] == 107.0 and state["end_reason"] == "ended" and state["alerts"] == {}
    assert state["summary"] == {"time": state["summary"]["time"], "reason": "ended", "windows": 5}
    assert h.messages("alice") == texts  # an ended stream's history is still there
    assert h.streams(now=107.0 + HistoryConfig().ended_keep_seconds + 1) == []
    assert h.messages("alice") is None


def test_rings_are_bounded_by_stream_time_and_count() -> None:
    h = History(HistoryConfig(minutes=1.0, max_messages=30))
    m = StreamMessages("long")
    feed(h, m.stream_start("file", 16_000, 4.0, 1.0, {}))
    for i in range(10_000):  # 2.8 hours at a 1 s hop
        feed(h, scored(m, i, 3.0))
    kept = [json.loads(t) for t in h.messages("long") or []]
    assert len(kept) == 30
    assert kept[-1]["window"] == 9_999 and kept[0]["window"] == 9_970
    h2 = History(HistoryConfig(minutes=0.5, max_messages=1000))
    m2 = StreamMessages("hop")
    feed(h2, m2.stream_start("file", 16_000, 4.0, 1.0, {}))
    for i in range(200):
        feed(h2, scored(m2, i, 3.0))
    kept = [json.loads(t) for t in h2.messages("hop") or []]
    assert kept[-1]["t_end"] - kept[0]["t_end"] <= 30.0 and len(kept) == 31
    assert len(h2.streams(0.0)[0]["recent"]) == HistoryConfig().spark_points


def test_ended_streams_are_capped_and_a_restart_replaces_one() -> None:
    h = History(HistoryConfig(max_ended=3))
    for i in range(5):
        m = StreamMessages(f"s{i}")
        feed(h, m.stream_start("file", 16_000, 4.0, 1.0, {}), now=i)
        feed(h, m.stream_end(reason="ended", windows=0, seconds=0.0, rolling_mos=None), now=i + 0.5)
    assert [s["name"] for s in h.streams(now=10.0)] == ["s4", "s3", "s2"]
    m = StreamMessages("s3")
    feed(h, m.stream_start("file", 16_000, 4.0, 1.0, {}), now=11.0)
    names = [(s["name"], s["ended"]) for s in h.streams(now=11.0)]
    assert names == [("s3", None), ("s4", 4.5), ("s2", 2.5)]


def test_unknown_streams_and_messages_are_ignored() -> None:
    h = History()
    feed(
        h,
        StreamMessages("ghost").score(
            index=0,
            t_start=0,
            t_end=4,
            status="ok",
            mos=3.0,
            mos_std=0.1,
            rolling_mos=3.0,
            rolling_std=0.1,
            diagnostics={},
            t_capture=0,
            latency_ms=0,
        ),
    )
    h.record({"type": "hello", "stream": None}, "{}", 0.0)
    assert h.streams(0.0) == [] and h.messages("ghost") is None and len(h) == 0


@pytest.mark.parametrize("kw", [{"minutes": 0}, {"max_messages": 0}, {"ended_keep_seconds": -1}])
def test_bad_config(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        HistoryConfig(**kw)
