from __future__ import annotations

import json

import pytest

from samos.monitor.schema import SCHEMA, StreamMessages, encode, hello


def test_every_message_has_schema_stream_and_per_stream_seq() -> None:
    m = StreamMessages("a")
    msgs = [
        m.stream_start("file", 44_100, 4.0, 1.0, {"path": "x"}),
        m.score(
            index=0,
            t_start=0.0,
            t_end=4.0,
            status="ok",
            mos=3.5,
            mos_std=0.2,
            rolling_mos=3.5,
            rolling_std=0.2,
            diagnostics={"level_db": -20.0},
            t_capture=1.0,
            latency_ms=12.0,
        ),
        m.alert(event="raise", t=4.0, rolling_mos=2.0, threshold=2.5, duration_seconds=5.0),
        m.stream_end(reason="ended", windows=1, seconds=4.0, rolling_mos=3.5),
    ]
    assert [x["seq"] for x in msgs] == [0, 1, 2, 3]
    assert {x["schema"] for x in msgs} == {SCHEMA} and {x["stream"] for x in msgs} == {"a"}
    assert StreamMessages("b").stream_start("file", 1, 1.0, 1.0, {})["seq"] == 0
    h = hello(["b", "a"], "samos")
    assert h["type"] == "hello" and h["streams"] == ["a", "b"] and h["stream"] is None


def test_non_finite_numbers_become_null() -> None:
    msg = StreamMessages("a").score(
        index=0,
        t_start=0.0,
        t_end=1.0,
        status="silence",
        mos=None,
        mos_std=None,
        rolling_mos=float("nan"),
        rolling_std=None,
        diagnostics={"active_level_db": float("-inf")},
        t_capture=0.0,
        latency_ms=1.0,
    )
    text = encode(msg)
    back = json.loads(text)
    assert back["rolling_mos"] is None and back["diagnostics"]["active_level_db"] is None


def test_rejects_unknown_status_and_event() -> None:
    m = StreamMessages("a")
    with pytest.raises(ValueError):
        m.score(
            index=0,
            t_start=0,
            t_end=1,
            status="meh",
            mos=None,
            mos_std=None,
            rolling_mos=None,
            rolling_std=None,
            diagnostics={},
            t_capture=0,
            latency_ms=0,
        )
    with pytest.raises(ValueError):
        m.alert(event="maybe", t=0, rolling_mos=None, threshold=1, duration_seconds=0)


def test_alerts_carry_kind_reason_message_and_level() -> None:
    m = StreamMessages("a")
    a = m.alert(
        event="raise", t=30.0, rolling_mos=3.4, threshold=2.8, duration_seconds=20.0,
        kind="no_speech", reason="no_speech", message="no speech at -31 dBFS for 20 s after speech",
        level_db=-31.234,
    )
    assert (a["kind"], a["reason"], a["level_db"]) == ("no_speech", "no_speech", -31.23)
    assert a["message"].startswith("no speech")
    plain = m.alert(
        event="clear", t=1.0, rolling_mos=None, threshold=2.8, duration_seconds=60.0, reason="no_scores"
    )
    assert plain["kind"] == "low_mos" and plain["level_db"] is None
    for bad in ({"kind": "loud"}, {"reason": "because"}):
        with pytest.raises(ValueError, match="unknown alert"):
            m.alert(event="raise", t=0, rolling_mos=None, threshold=1, duration_seconds=0, **bad)
