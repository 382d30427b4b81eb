"""What the console shows: every stream's current state and a bounded history of its messages.

:class:`History` is fed every message the monitor publishes (:meth:`History.record`) and answers
``GET /api/streams`` (:meth:`History.streams`) and ``GET /api/streams/{name}/history``
(:meth:`History.messages`). Per stream it keeps the ``score`` and ``alert`` messages of the last
``minutes`` of stream time (at most ``max_messages``), stored as their encoded JSON text, plus the
latest state and the last ``spark_points`` rolling MOS values. Ended streams stay listed, with their
summary, for ``ended_keep_seconds`` (wall time), at most ``max_ended`` of them. Memory is bounded
whatever the calls' length or number. Pure bookkeeping: no I/O, no clock of its own (callers pass
``now``, wall seconds).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from samos.config import ConfigError


@dataclass(frozen=True)
class HistoryConfig:
    """History kept for the console and ``/api/streams`` (see module doc)."""

    minutes: float = 30.0
    """Stream time of windows and alerts kept per stream."""
    max_messages: int = 4000
    """Messages kept per stream whatever the hop (bounds memory: about 1 KB each)."""
    spark_points: int = 120
    """Recent rolling MOS values returned with each stream's state (the console's sparkline)."""
    ended_keep_seconds: float = 600.0
    """How long an ended stream stays listed (greyed, with its summary)."""
    max_ended: int = 256

    def __post_init__(self) -> None:
        if self.minutes <= 0 or self.ended_keep_seconds < 0:
            raise ConfigError("history.minutes must be > 0 and history.ended_keep_seconds >= 0")
        if self.max_messages < 1 or self.spark_points < 1 or self.max_ended < 0:
            raise ConfigError("history.max_messages and spark_points must be >= 1, max_ended >= 0")


@dataclass(eq=False)
class StreamRecord:
    """One stream's state and recent messages (``ring``: ``(seq, stream time, encoded JSON)``)."""

    name: str
    kind: str | None = None
    rate: int | None = None
    started: float = 0.0
    ended: float | None = None
    end_reason: str | None = None
    last: dict[str, Any] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Open alerts by kind: ``{since (wall time raised), since_t (stream time), message}``."""
    summary: dict[str, Any] | None = None
    ring: deque[tuple[int, float, str]] = field(default_factory=deque)
    spark: deque[float | None] = field(default_factory=deque)

    def state(self) -> dict[str, Any]:
        """The JSON-ready state of this stream for ``/api/streams``."""
        last = self.last
        return {
            "name": self.name,
            "kind": self.kind,
            "rate": self.rate,
            "started": self.started,
            "ended": self.ended,
            "end_reason": self.end_reason,
            "window": last.get("window"),
            "t_end": last.get("t_end"),
            "status": last.get("status"),
            "mos": last.get("mos"),
            "mos_std": last.get("mos_std"),
            "rolling_mos": last.get("rolling_mos"),
            "rolling_std": last.get("rolling_std"),
            "diagnostics": last.get("diagnostics"),
            "alerts": dict(self.alerts),
            "summary": self.summary,
            "recent": list(self.spark),
            "seq": self.ring[-1][0] if self.ring else None,
        }


class History:
    """All streams' records (see module doc)."""

    def __init__(self, cfg: HistoryConfig | None = None) -> None:
        self.cfg = cfg or HistoryConfig()
        self._live: dict[str, StreamRecord] = {}
        self._ended: OrderedDict[str, StreamRecord] = OrderedDict()

    def record(self, msg: dict[str, Any], text: str, now: float) -> None:
        """Take one published message (``text``: its encoded JSON) at wall time ``now``."""
        name, kind = msg.get("stream"), msg.get("type")
        if not isinstance(name, str):
            return
        if kind == "stream_start":
            self._ended.pop(name, None)  # a new stream of the same name replaces the ended one
            self._live[name] = StreamRecord(name, msg.get("kind"), msg.get("rate"), started=now)
            return
        rec = self._live.get(name)
        if rec is None:
            return
        if kind == "score":
            self._keep(rec, msg, text, float(msg.get("t_end") or 0.0))
            rec.last = msg
            rec.spark.append(msg.get("rolling_mos"))
            while len(rec.spark) > self.cfg.spark_points:
                rec.spark.popleft()
        elif kind == "alert":
            self._keep(rec, msg, text, float(msg.get("t") or 0.0))
            kind = str(msg.get("kind") or "low_mos")
            if msg.get("event") == "raise":
                rec.alerts[kind] = {"since": now, "since_t": msg.get("t"), "message": msg.get("message")}
            else:
                rec.alerts.pop(kind, None)
        elif kind == "stream_summary":
            rec.summary = {k: v for k, v in msg.items() if k not in ("schema", "type", "stream", "seq")}
        elif kind == "stream_end":
            rec.ended, rec.end_reason = now, msg.get("reason")
            rec.alerts.clear()
            del self._live[name]
            self._ended[name] = rec
            self._prune(now)

    def _keep(self, rec: StreamRecord, msg: dict[str, Any], text: str, t: float) -> None:
        rec.ring.append((int(msg.get("seq") or 0), t, text))
        horizon = t - 60.0 * self.cfg.minutes
        while rec.ring and (len(rec.ring) > self.cfg.max_messages or rec.ring[0][1] < horizon):
            rec.ring.popleft()

    def _prune(self, now: float) -> None:
        while self._ended and len(self._ended) > self.cfg.max_ended:
            self._ended.popitem(last=False)
        keep = self.cfg.ended_keep_seconds
        for name in [n for n, r in self._ended.items() if now - (r.ended or now) > keep]:
            del self._ended[name]

    def streams(self, now: float) -> list[dict[str, Any]]:
        """The state of every live stream, then of the ended ones still kept (newest end first)."""
        self._prune(now)
        ended = sorted(self._ended.values(), key=lambda r: -(r.ended or 0.0))
        return [r.state() for r in sorted(self._live.values(), key=lambda r: r.name)] + [
            r.state() for r in ended
        ]

    def get(self, name: str) -> StreamRecord | None:
        return self._live.get(name) or self._ended.get(name)

    def messages(self, name: str, since: int = -1) -> list[str] | None:
        """Encoded ``score``/``alert`` messages of ``name`` with ``seq > since`` (None: no such stream)."""
        rec = self.get(name)
        if rec is None:
            return None
        return [text for seq, _, text in rec.ring if seq > since]

    def __len__(self) -> int:
        return len(self._live) + len(self._ended)
