"""A call's quality summary, accumulated window by window in constant memory. Pure: no I/O.

:class:`CallSummary` takes each published ``score`` and ``alert`` message of one stream and, when the
stream ends, gives the body of its ``stream_summary`` message:

- ``duration_seconds`` (stream time), ``windows`` and ``scored_windows``;
- ``mos``: mean, min, and the 10th/50th/90th percentiles of the window MOS (0.01 MOS resolution);
- ``seconds_below_threshold``: stream time during which the rolling MOS was below the alert
  threshold (each window counts for the stream time since the previous window);
- ``worst``: the lowest mean MOS of the windows that end within any ``worst_seconds`` of stream
  time, with the start of the first such window and the end of the last (stream seconds); a call
  shorter than that: all of it;
- ``statuses``: windows per status; ``problems``: windows showing each diagnostic problem
  (``clipping``, ``narrowband``, ``low_level``, ``dead_air``, ``no_speech``, ``dropped_audio``);
- ``alerts``: per alert kind (``low_mos``, ``no_speech``) that occurred, how often it was raised and
  the stream time it stayed open.

Memory does not grow with the call's length: a MOS histogram, counters, and the windows of the
last ``worst_seconds``.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any

import numpy as np

BIN = 0.01
"""MOS histogram resolution (percentiles are exact to this)."""
_BINS = int(round(4.0 / BIN)) + 1  # MOS 1.00 .. 5.00
CLIPPING_FRACTION = 1e-3
"""A window counts as clipped when at least this fraction of its samples is at full scale."""
LOW_LEVEL_DB = -40.0
"""A scored window whose active speech level is below this (dBov) counts as too quiet."""


def problems_of(status: str, diagnostics: dict[str, Any]) -> list[str]:
    """The diagnostic problems a window shows (names as in the summary's ``problems``)."""
    out = []
    if (diagnostics.get("clipping") or 0.0) >= CLIPPING_FRACTION:
        out.append("clipping")
    if diagnostics.get("band") == "nb":
        out.append("narrowband")
    level = diagnostics.get("active_level_db")
    if status == "ok" and isinstance(level, (int, float)) and math.isfinite(level) and level < LOW_LEVEL_DB:
        out.append("low_level")
    if status == "silence" or diagnostics.get("silence"):
        out.append("dead_air")
    if status == "no_speech":
        out.append("no_speech")
    if (diagnostics.get("dropped_seconds") or 0.0) > 0.0 or (diagnostics.get("loss_ratio") or 0.0) > 0.0:
        out.append("dropped_audio")
    return out


class CallSummary:
    """Accumulates one stream's windows and alerts; :meth:`result` gives the summary (module doc).

    ``threshold``: the alert threshold (MOS) for ``seconds_below_threshold``; ``worst_seconds``:
    the span of the worst stretch (s).
    """

    def __init__(self, threshold: float, worst_seconds: float = 10.0) -> None:
        if worst_seconds <= 0:
            raise ValueError(f"worst_seconds must be > 0, got {worst_seconds}")
        self.threshold = threshold
        self.worst_seconds = worst_seconds
        self._hist = np.zeros(_BINS, np.int64)
        self._sum = 0.0
        self._min = math.inf
        self._scored = 0
        self._windows = 0
        self._t_end = 0.0
        self._below = 0.0
        self._statuses: Counter[str] = Counter()
        self._problems: Counter[str] = Counter()
        self._first_start: float | None = None
        self._recent: deque[tuple[float, float, float]] = deque()  # (t_start, t_end, mos) of scored windows
        self._recent_sum = 0.0
        self._worst: tuple[float, float, float] | None = None  # (mean, t_start, t_end)
        self._raised: Counter[str] = Counter()
        self._open_at: dict[str, float] = {}  # kind -> stream time raised
        self._alert_seconds: Counter[str] = Counter()

    def add(self, msg: dict[str, Any]) -> None:
        """Feed one published message of the stream (``score`` and ``alert`` count; others are ignored)."""
        if msg.get("type") == "score":
            self._score(msg)
        elif msg.get("type") == "alert":
            self._alert(msg)

    def _score(self, msg: dict[str, Any]) -> None:
        t_start, t_end = float(msg.get("t_start") or 0.0), float(msg.get("t_end") or 0.0)
        step = max(0.0, t_end - self._t_end)
        self._t_end = max(self._t_end, t_end)
        self._windows += 1
        status = str(msg.get("status"))
        self._statuses[status] += 1
        self._problems.update(problems_of(status, msg.get("diagnostics") or {}))
        rolling = msg.get("rolling_mos")
        if isinstance(rolling, (int, float)) and rolling < self.threshold:
            self._below += step
        mos = msg.get("mos")
        if status != "ok" or not isinstance(mos, (int, float)) or not math.isfinite(mos):
            return
        mos = float(mos)
        self._scored += 1
        self._sum += mos
        self._min = min(self._min, mos)
        self._hist[min(_BINS - 1, max(0, int(round((mos - 1.0) / BIN))))] += 1
        if self._first_start is None:
            self._first_start = t_start
        self._recent.append((t_start, t_end, mos))
        self._recent_sum += mos
        while self._recent[0][1] <= t_end - self.worst_seconds + 1e-6:
            self._recent_sum -= self._recent.popleft()[2]
        if t_end >= self.worst_seconds - 1e-6:  # the span holds a whole worst_seconds of stream time
            mean = self._recent_sum / len(self._recent)
            if self._worst is None or mean < self._worst[0]:
                self._worst = (mean, self._recent[0][0], t_end)

    def _alert(self, msg: dict[str, Any]) -> None:
        t = float(msg.get("t") or self._t_end)
        kind = str(msg.get("kind") or "low_mos")
        if msg.get("event") == "raise":
            self._raised[kind] += 1
            self._open_at[kind] = t
        elif msg.get("event") == "clear" and kind in self._open_at:
            self._alert_seconds[kind] += max(0.0, t - self._open_at.pop(kind))

    def _percentile(self, q: float) -> float | None:
        if not self._scored:
            return None
        rank = q * (self._scored - 1)
        cum = np.cumsum(self._hist)
        return round(1.0 + BIN * int(np.searchsorted(cum, rank + 1)), 2)

    def result(self, duration_seconds: float | None = None) -> dict[str, Any]:
        """The summary so far (module doc); ``duration_seconds`` defaults to the last window's end."""
        duration = self._t_end if duration_seconds is None else max(duration_seconds, 0.0)
        seconds_open = Counter(self._alert_seconds)
        for kind, t in self._open_at.items():  # still open at the end
            seconds_open[kind] += max(0.0, self._t_end - t)
        alerts = {
            kind: {"raised": self._raised[kind], "seconds_open": round(seconds_open[kind], 3)}
            for kind in sorted(set(self._raised) | set(seconds_open))
        }
        worst = self._worst
        if worst is None and self._scored:  # a call shorter than worst_seconds: the whole of it
            worst = (self._sum / self._scored, self._first_start or 0.0, self._t_end)
        worst_out = None
        if worst is not None:
            mean, start, end = worst
            worst_out = {"mos": round(mean, 3), "t_start": round(start, 3), "t_end": round(end, 3)}
        return {
            "duration_seconds": round(duration, 3),
            "windows": self._windows,
            "scored_windows": self._scored,
            "mos": {
                "mean": round(self._sum / self._scored, 3) if self._scored else None,
                "min": round(self._min, 3) if self._scored else None,
                "p10": self._percentile(0.1),
                "p50": self._percentile(0.5),
                "p90": self._percentile(0.9),
            },
            "threshold": self.threshold,
            "seconds_below_threshold": round(self._below, 3),
            "worst": worst_out,
            "worst_seconds": self.worst_seconds,
            "statuses": dict(sorted(self._statuses.items())),
            "problems": dict(sorted(self._problems.items())),
            "alerts": alerts,
        }
