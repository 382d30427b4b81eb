"""The websocket message schema ``samos.monitor/1``: builders for every message type.

Every message is a JSON object with ``schema``, ``type``, ``stream`` and ``seq`` (per stream, from 0,
incremented by one per message of that stream; ``hello`` has ``stream: null`` and ``seq: 0``).
Types: ``hello``, ``stream_start``, ``score``, ``alert``, ``stream_summary``, ``stream_end``. See
docs/MONITOR.md.
Numbers that are not finite become ``null``. Pure: no I/O.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

SCHEMA = "samos.monitor/1"
STATUSES = ("ok", "silence", "no_speech", "dropped", "error")
"""Window status: ``ok`` has a MOS; the others explain why not (``silence``: dead air; ``no_speech``:
a signal without speech, its level in ``diagnostics.level_db``)."""
ALERT_KINDS = ("low_mos", "no_speech")
ALERT_REASONS = ("low_mos", "recovered", "no_scores", "no_speech", "speech")
"""Why an alert changed: raised for ``low_mos`` / ``no_speech``; cleared because the quality
``recovered``, for lack of scores (``no_scores``: the quality is unknown), or ``speech`` is back."""


def _num(x: float | None, digits: int = 4) -> float | None:
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def clean(obj: Any) -> Any:
    """Recursively replace non-finite floats by None and round floats (JSON-safe)."""
    if isinstance(obj, float):
        return _num(obj, 6)
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def encode(msg: dict[str, Any]) -> str:
    """Compact JSON text of a message (no NaN/Infinity)."""
    return json.dumps(msg, separators=(",", ":"), allow_nan=False)


def hello(streams: list[str], server: str) -> dict[str, Any]:
    """First message to each client: the schema, the server, the streams running now."""
    return {
        "schema": SCHEMA,
        "type": "hello",
        "stream": None,
        "seq": 0,
        "server": server,
        "streams": sorted(streams),
        "time": time.time(),
    }


class StreamMessages:
    """Builds one stream's messages with its per-stream ``seq``."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._seq = 0

    def _base(self, type_: str) -> dict[str, Any]:
        msg = {"schema": SCHEMA, "type": type_, "stream": self.stream, "seq": self._seq, "time": time.time()}
        self._seq += 1
        return msg

    def stream_start(
        self, kind: str, rate: int, window_seconds: float, hop_seconds: float, model: dict[str, Any]
    ) -> dict[str, Any]:
        """The stream exists: its source kind, native rate (Hz), window/hop (s) and the model."""
        msg = self._base("stream_start")
        msg.update(
            kind=kind, rate=int(rate), window_seconds=window_seconds, hop_seconds=hop_seconds, model=model
        )
        return msg

    def score(
        self,
        *,
        index: int,
        t_start: float,
        t_end: float,
        status: str,
        mos: float | None,
        mos_std: float | None,
        rolling_mos: float | None,
        rolling_std: float | None,
        diagnostics: dict[str, Any],
        t_capture: float,
        latency_ms: float,
    ) -> dict[str, Any]:
        """One window: ``t_start``/``t_end`` in stream seconds; ``mos``/``mos_std`` null unless
        ``status == "ok"``; ``t_capture`` is the host's monotonic clock when the window's last sample
        was captured; ``latency_ms`` from then to publishing. ``diagnostics`` (docs/MONITOR.md) include
        ``loss_ratio``, the fraction of the window's duration that was lost audio (kept at its place
        as silence or codec concealment, and scored so), and ``dropped_seconds``."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        msg = self._base("score")
        msg.update(
            window=index,
            t_start=_num(t_start),
            t_end=_num(t_end),
            status=status,
            mos=_num(mos),
            mos_std=_num(mos_std),
            rolling_mos=_num(rolling_mos),
            rolling_std=_num(rolling_std),
            diagnostics=clean(diagnostics),
            t_capture=t_capture,
            latency_ms=_num(latency_ms, 2),
        )
        return msg

    def alert(
        self,
        *,
        event: str,
        t: float,
        rolling_mos: float | None,
        threshold: float,
        duration_seconds: float,
        kind: str = "low_mos",
        reason: str | None = None,
        message: str = "",
        level_db: float | None = None,
    ) -> dict[str, Any]:
        """``event``: ``"raise"`` or ``"clear"`` of an alert of ``kind`` (``low_mos``: quality below
        ``threshold``; ``no_speech``: no speech after speech, ``level_db`` the window's level);
        ``reason`` says why (see ALERT_REASONS) and ``message`` in one line."""
        if event not in ("raise", "clear"):
            raise ValueError(f"unknown alert event {event!r}")
        if kind not in ALERT_KINDS:
            raise ValueError(f"unknown alert kind {kind!r}")
        if reason is not None and reason not in ALERT_REASONS:
            raise ValueError(f"unknown alert reason {reason!r}")
        msg = self._base("alert")
        msg.update(
            kind=kind,
            event=event,
            reason=reason,
            message=message,
            t=_num(t),
            rolling_mos=_num(rolling_mos),
            threshold=threshold,
            duration_seconds=_num(duration_seconds),
            level_db=_num(level_db, 2),
        )
        return msg

    def stream_summary(self, *, reason: str, summary: dict[str, Any]) -> dict[str, Any]:
        """The call's quality summary (samos.monitor.summary.CallSummary.result), sent just before
        ``stream_end``; ``reason`` as there."""
        msg = self._base("stream_summary")
        msg.update(reason=reason, **clean(summary))
        return msg

    def stream_end(
        self,
        *,
        reason: str,
        windows: int,
        seconds: float,
        rolling_mos: float | None,
        error: str | None = None,
    ) -> dict[str, Any]:
        """The stream is over: ``reason`` is ``ended``, ``stopped`` or ``error`` (with ``error``)."""
        msg = self._base("stream_end")
        msg.update(
            reason=reason, windows=windows, seconds=_num(seconds), rolling_mos=_num(rolling_mos), error=error
        )
        return msg
