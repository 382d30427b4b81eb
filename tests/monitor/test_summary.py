"""CallSummary: the stream_summary body from a call's score and alert messages."""

from __future__ import annotations

from typing import Any

import pytest

from samos.monitor.summary import CallSummary, problems_of


def score(
    t_end: float,
    mos: float | None,
    rolling: float | None = None,
    status: str = "ok",
    window: float = 4.0,
    **diag: Any,
) -> dict[str, Any]:
    return {
        "type": "score",
        "t_start": max(0.0, t_end - window),
        "t_end": t_end,
        "status": status,
        "mos": mos,
        "rolling_mos": mos if rolling is None else rolling,
        "diagnostics": diag,
    }


def test_a_call_with_a_bad_stretch() -> None:
    s = CallSummary(threshold=2.5, worst_seconds=10.0)
    t = 4.0
    for _ in range(60):  # 60 windows, hop 1 s: 4..63 s; MOS 4 except 1.5 for the windows ending 30..39
        mos = 1.5 if 30 <= t < 40 else 4.0
        s.add(score(t, mos))
        t += 1.0
    s.add({"type": "alert", "kind": "low_mos", "event": "raise", "t": 35.0})
    s.add({"type": "alert", "kind": "low_mos", "event": "clear", "t": 45.0})
    s.add({"type": "alert", "kind": "no_speech", "event": "raise", "t": 50.0})
    r = s.result(63.5)
    assert r["duration_seconds"] == 63.5
    assert r["windows"] == r["scored_windows"] == 60
    assert r["mos"]["mean"] == pytest.approx((50 * 4.0 + 10 * 1.5) / 60, abs=1e-3)
    assert r["mos"]["min"] == 1.5
    assert r["mos"]["p10"] == 1.5 and r["mos"]["p50"] == 4.0 and r["mos"]["p90"] == 4.0
    assert r["seconds_below_threshold"] == pytest.approx(10.0)  # windows ending 30..39, one hop each
    assert r["worst"]["mos"] == pytest.approx(1.5)
    assert r["worst"]["t_start"] == pytest.approx(26.0) and r["worst"]["t_end"] == pytest.approx(39.0)
    assert r["alerts"] == {
        "low_mos": {"raised": 1, "seconds_open": 10.0},
        "no_speech": {"raised": 1, "seconds_open": 13.0},  # still open at the last window (63 s)
    }
    assert r["statuses"] == {"ok": 60}


def test_unscored_windows_and_problems_are_counted() -> None:
    s = CallSummary(threshold=2.5)
    s.add(score(4.0, 3.0, clipping=0.01, band="fb", active_level_db=-20.0))
    s.add(score(5.0, None, rolling=3.0, status="silence", silence=True, level_db=-80.0))
    s.add(score(5.5, None, rolling=3.0, status="no_speech", level_db=-30.0))
    s.add(score(6.0, 3.2, band="nb", active_level_db=-50.0, dropped_seconds=0.2))
    r = s.result()
    assert r["statuses"] == {"no_speech": 1, "ok": 2, "silence": 1}
    problems = {
        "clipping": 1,
        "dead_air": 1,
        "dropped_audio": 1,
        "low_level": 1,
        "narrowband": 1,
        "no_speech": 1,
    }
    assert r["problems"] == problems
    assert r["scored_windows"] == 2
    # shorter than worst_seconds: the worst stretch is the whole call
    assert r["worst"] == {"mos": 3.1, "t_start": 0.0, "t_end": 6.0}


def test_an_alert_still_open_at_the_end_counts_until_the_last_window() -> None:
    s = CallSummary(threshold=3.0)
    for t in range(4, 20):
        s.add(score(float(t), 2.0))
    s.add({"type": "alert", "kind": "low_mos", "event": "raise", "t": 9.0})
    assert s.result()["alerts"] == {"low_mos": {"raised": 1, "seconds_open": 10.0}}
    assert s.result()["seconds_below_threshold"] == pytest.approx(19.0)


def test_a_call_without_scores() -> None:
    r = CallSummary(threshold=2.5).result(3.0)
    assert r["mos"] == {"mean": None, "min": None, "p10": None, "p50": None, "p90": None}
    assert r["worst"] is None and r["windows"] == 0 and r["alerts"] == {}


def test_memory_does_not_grow_with_the_call() -> None:
    s = CallSummary(threshold=2.5, worst_seconds=10.0)
    for i in range(20_000):  # 5.5 hours at a 1 s hop
        s.add(score(4.0 + i, 3.0 + (i % 7) / 10))
    assert len(s._recent) <= 11
    assert s.result()["scored_windows"] == 20_000


def test_problems_of_a_clean_window() -> None:
    assert problems_of("ok", {"clipping": 0.0, "band": "fb", "active_level_db": -24.0}) == []


def test_worst_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="worst_seconds"):
        CallSummary(2.5, worst_seconds=0)
