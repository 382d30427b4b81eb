"""The console's banner and per-stream status lines (in place on a terminal, plain when piped)."""

from __future__ import annotations

import io
from typing import Any

from samos.monitor.config import MonitorConfig
from samos.monitor.console import StatusBoard, StreamStatus, banner_lines, status_line
from samos.monitor.schema import StreamMessages


def _messages(name: str, mos: list[float | None]) -> list[dict[str, Any]]:
    m = StreamMessages(name)
    out = [m.stream_start("file", 16_000, 4.0, 1.0, {})]
    for i, x in enumerate(mos):
        out.append(
            m.score(
                index=i,
                t_start=float(i),
                t_end=i + 4.0,
                status="ok" if x is not None else "silence",
                mos=x,
                mos_std=0.3 if x is not None else None,
                rolling_mos=x,
                rolling_std=None,
                diagnostics={"level_db": -20.0 - i},
                t_capture=0.0,
                latency_ms=5.0,
            )
        )
    return out


def test_status_line() -> None:
    s = StreamStatus("desk", level_db=-23.14, mos=3.418, rolling_mos=3.4, status="ok", windows=12)
    assert status_line(s) == "desk  level -23.1 dB  MOS 3.42  rolling 3.40  ok  12 windows"
    s.alerts, s.ended = {"low_mos"}, "stopped"
    assert status_line(s).endswith("ended (stopped)  12 windows  ALERT: low quality")
    assert status_line(StreamStatus("x")) == "x  level - dB  MOS -  rolling -  starting  0 windows"


def test_board_follows_the_messages() -> None:
    board = StatusBoard(io.StringIO(), tty=False)
    for msg in _messages("a", [3.0, None]):
        board.update(msg)
    s = board.streams["a"]
    assert (s.kind, s.rate, s.windows, s.status) == ("file", 16_000, 2, "silence")
    assert (s.mos, s.level_db) == (3.0, -21.0), "the last MOS stays; the level is the latest window's"
    m = StreamMessages("a")
    m._seq = 10
    board.update(m.alert(event="raise", t=9.0, rolling_mos=2.0, threshold=2.5, duration_seconds=5.0))
    assert board.streams["a"].alerts == {"low_mos"}
    board.update({"type": "alert", "stream": "a", "event": "raise", "kind": "no_speech"})
    board.update({"type": "alert", "stream": "a", "event": "clear", "kind": "low_mos"})
    assert board.streams["a"].alerts == {"no_speech"}, "alerts of different kinds open and close apart"
    assert status_line(board.streams["a"]).endswith("ALERT: no speech")
    board.update({"type": "hello", "stream": None})  # not a stream's message: ignored


def test_piped_lines_are_plain_and_periodic() -> None:
    out = io.StringIO()
    board = StatusBoard(out, tty=False, plain_seconds=5.0)
    msgs = _messages("a", [3.0, 3.5, 4.0])
    board.update(msgs[0])
    board.write_once(now=0.0)
    assert out.getvalue() == "", "no line before the first window"
    board.update(msgs[1])
    board.write_once(now=1.0)
    board.update(msgs[2])
    board.write_once(now=2.0)  # changed, but the last line was 1 s ago
    board.write_once(now=3.0)
    first = "monitor: a  level -20.0 dB  MOS 3.00  rolling 3.00  ok  1 windows"
    assert out.getvalue().splitlines() == [first]
    board.update(msgs[3])
    board.write_once(now=6.5)
    board.write_once(now=20.0)  # nothing new: no line
    end = StreamMessages("a")
    end._seq = 9
    board.update(end.stream_end(reason="ended", windows=3, seconds=7.0, rolling_mos=3.6))
    board.write_once(now=20.5)
    lines = out.getvalue().splitlines()
    assert lines[1:] == [
        "monitor: a  level -22.0 dB  MOS 4.00  rolling 4.00  ok  3 windows",
        "monitor: a  level -22.0 dB  MOS 4.00  rolling 3.60  ended  3 windows",
    ]
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    assert board.streams == {}, "an ended stream leaves the board once written"


def test_terminal_board_redraws_in_place() -> None:
    out = io.StringIO()
    board = StatusBoard(out, tty=True)
    for msg in _messages("a", [3.0]) + _messages("b", [2.0]):
        board.update(msg)
    board.write_once()
    first = out.getvalue()
    assert first.count("\x1b[2K") == 2 and "\x1b[2F" not in first
    board.write_once()
    assert out.getvalue()[len(first) :].startswith("\x1b[2F"), "the cursor goes back up over both lines"
    end = StreamMessages("a")
    end._seq = 5
    board.update(end.stream_end(reason="ended", windows=1, seconds=4.0, rolling_mos=3.0))
    before = len(out.getvalue())
    board.write_once()
    redraw = out.getvalue()[before:]
    assert redraw.startswith("\x1b[2F") and redraw.index("a  level") < redraw.index("b  level")
    assert board._drawn == 1 and list(board.streams) == ["b"], "the ended line stays above the live one"


def test_quiet_board_writes_nothing() -> None:
    out = io.StringIO()
    board = StatusBoard(out, tty=False, enabled=False)
    for msg in _messages("a", [3.0]):
        board.update(msg)
    board.write_once(final=True)
    assert out.getvalue() == "" and board.streams == {}


def test_banner_names_provider_pages_metrics_and_thresholds() -> None:
    cfg = MonitorConfig()
    model = {"path": "m.onnx", "provider": "cpu", "version": "0.1.0"}
    lines = banner_lines(cfg, model, "ws://127.0.0.1:8765/", ("127.0.0.1", 8080), ("cuda skipped",))
    assert lines[0] == "model m.onnx version 0.1.0 on cpu (auto)"
    assert lines[1] == "note: cuda skipped"
    assert "publish page http://127.0.0.1:8080/  overlay http://127.0.0.1:8080/overlay" in lines
    assert "metrics http://127.0.0.1:8080/metrics  health http://127.0.0.1:8080/healthz" in lines
    a = cfg.alerts
    clears = f"{a.threshold + a.hysteresis:g}"
    assert lines[-1].endswith(
        f"alert below MOS {a.threshold:g} for {a.min_duration_seconds:g} s (clears at {clears})"
    )
    off = banner_lines(cfg, model, None, None)
    assert "websocket off" in off and any("metrics off" in x for x in off)


def test_banner_says_when_windows_are_scored_incrementally() -> None:
    model = {"path": "m.onnx", "provider": "cpu", "incremental": True}
    assert banner_lines(MonitorConfig(), model, None, None)[0] == "model m.onnx on cpu (auto, incremental)"
