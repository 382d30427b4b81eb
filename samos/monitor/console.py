"""The monitor's console: the start banner and one compact status line per stream while it runs.

:class:`StatusBoard` listens to the Monitor's messages (``Monitor.listeners``) and keeps, per
stream, the latest level, window MOS, rolling MOS, window status and alert state. On a terminal it
redraws its lines in place (``refresh_seconds``); when the output is piped it writes plain lines,
each stream's at most once every ``plain_seconds`` and only when something new arrived, plus a last
line when a stream ends. Formatting is pure (:func:`status_line`, :func:`banner_lines`); only
:meth:`StatusBoard.run` and :meth:`StatusBoard.close` write. The monitor's command line gives it
stdout through :class:`samos.monitor.lineout.ThreadedOut`, so a stdout that nobody reads never
blocks the event loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from samos.monitor.config import MonitorConfig

PREFIX = "monitor: "
CLEAR_LINE = "\x1b[2K"


class TextOut(Protocol):
    """Where the board writes: a text file (``sys.stdout``) or a ``lineout.ThreadedOut``."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


@dataclass
class StreamStatus:
    """What the console shows of one stream (from its ``score``/``alert``/``stream_end`` messages)."""

    name: str
    kind: str = ""
    rate: int = 0
    windows: int = 0
    level_db: float | None = None
    mos: float | None = None
    """MOS of the latest window that had one."""
    rolling_mos: float | None = None
    status: str = "starting"
    """Status of the latest window (``ok``, ``silence``, ``low_speech``, ``dropped``, ``error``)."""
    alerts: set[str] = field(default_factory=set)
    """Kinds of the alerts raised and not cleared (``low_mos``; an alert message without a kind is one)."""
    ended: str | None = None
    """``stream_end`` reason once the stream is over."""
    changed: bool = True


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def status_line(s: StreamStatus) -> str:
    """One stream's line, e.g. ``desk  level -23.1 dB  MOS 3.42  rolling 3.40  ok  12 windows``."""
    state = s.status if not s.ended else "ended" if s.ended == "ended" else f"ended ({s.ended})"
    names = {"low_mos": "low quality", "no_speech": "no speech"}
    alert = "".join(f"  ALERT: {names.get(k, k.replace('_', ' '))}" for k in sorted(s.alerts))
    return (
        f"{s.name}  level {_num(s.level_db, '.1f')} dB  MOS {_num(s.mos, '.2f')}  "
        f"rolling {_num(s.rolling_mos, '.2f')}  {state}  {s.windows} windows{alert}"
    )


def banner_lines(
    cfg: MonitorConfig,
    model: dict[str, Any],
    ws_url: str | None,
    http_address: tuple[str, int] | None,
    notes: tuple[str, ...] = (),
) -> list[str]:
    """What the monitor prints on start: model and provider, addresses, pages, metrics, thresholds."""
    w, a = cfg.window, cfg.alerts
    provider = model.get("provider") or "?"
    how = "auto" if list(cfg.worker.providers) == ["auto"] else "asked: " + ",".join(cfg.worker.providers)
    if cfg.backend != "inprocess":
        how = f"backend {cfg.backend}"
    version = f" version {model['version']}" if model.get("version") else ""
    pair = ", incremental" if model.get("incremental") else ""
    lines = [f"model {model.get('path') or '?'}{version} on {provider} ({how}{pair})"]
    lines += [f"note: {n}" for n in notes]
    lines.append(f"websocket {ws_url}" if ws_url else "websocket off")
    if http_address is not None:
        h, p = http_address
        base = f"http://[{h}]:{p}" if ":" in h else f"http://{h}:{p}"
        lines.append(f"publish page {base}/  overlay {base}/overlay")
        lines.append(f"metrics {base}/metrics  health {base}/healthz")
    else:
        lines.append("pages and metrics off (they are served with --webrtc HOST:PORT)")
    alert = (
        f"alert below MOS {a.threshold:g} for {a.min_duration_seconds:g} s "
        f"(clears at {a.threshold + a.hysteresis:g})"
        if a.enabled
        else "alerts off"
    )
    lines.append(
        f"window {w.window_seconds:g} s, hop {w.hop_seconds:g} s; silence below {w.silence_db:g} dBov, "
        f"speech needs {w.min_active:.0%} active frames; {alert}"
    )
    return lines


class StatusBoard:
    """Per-stream status lines, fed by ``update(msg)`` (a Monitor listener), written by ``run()``.

    ``tty``: redraw in place (else plain lines). ``enabled=False`` (``--quiet``) records nothing.
    """

    def __init__(
        self,
        out: TextOut,
        *,
        tty: bool,
        enabled: bool = True,
        refresh_seconds: float = 0.5,
        plain_seconds: float = 5.0,
    ) -> None:
        self.out = out
        self.tty = tty
        self.enabled = enabled
        self.refresh_seconds = refresh_seconds
        self.plain_seconds = plain_seconds
        self.streams: dict[str, StreamStatus] = {}
        self._drawn = 0
        self._last_plain: dict[str, float] = {}

    # --------------------------------------------------------------------------------- state
    def update(self, msg: dict[str, Any]) -> None:
        """Take one Monitor message (any type; unknown ones are ignored)."""
        if not self.enabled or not msg.get("stream"):
            return
        s = self.streams.setdefault(msg["stream"], StreamStatus(msg["stream"]))
        kind = msg.get("type")
        if kind == "stream_start":
            s.kind, s.rate = str(msg.get("kind", "")), int(msg.get("rate") or 0)
        elif kind == "score":
            s.windows += 1
            s.status = str(msg.get("status"))
            level = (msg.get("diagnostics") or {}).get("level_db")
            s.level_db = level if isinstance(level, (int, float)) else None
            if msg.get("mos") is not None:
                s.mos = float(msg["mos"])
            if msg.get("rolling_mos") is not None:
                s.rolling_mos = float(msg["rolling_mos"])
        elif kind == "alert":
            which = str(msg.get("kind") or "low_mos")
            if msg.get("event") == "raise":
                s.alerts.add(which)
            else:
                s.alerts.discard(which)
        elif kind == "stream_end":
            s.ended = str(msg.get("reason"))
            if msg.get("rolling_mos") is not None:
                s.rolling_mos = float(msg["rolling_mos"])
        else:
            return
        s.changed = True

    # ------------------------------------------------------------------------------- writing
    def write_once(self, now: float | None = None, final: bool = False) -> None:
        """Write what is due: the whole board in place (tty) or the plain lines of changed streams.

        A stream that ended gets its last line once and leaves the board (on a terminal that line
        stays above the lines still being redrawn).
        """
        if not self.enabled:
            return
        ended = [s for s in self.streams.values() if s.ended]
        if self.tty:
            live = [s for s in self.streams.values() if not s.ended]
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            self.out.write(up + "".join(f"{CLEAR_LINE}{PREFIX}{status_line(s)}\n" for s in ended + live))
            self._drawn = len(live)
            for s in live:
                s.changed = False
        else:
            now = time.monotonic() if now is None else now
            for s in self.streams.values():
                due = final or s.ended or now - self._last_plain.get(s.name, -1e9) >= self.plain_seconds
                if s.changed and due and (s.windows or s.ended):
                    self.out.write(PREFIX + status_line(s) + "\n")
                    self._last_plain[s.name] = now
                    s.changed = False
        for s in ended:
            del self.streams[s.name]
            self._last_plain.pop(s.name, None)
        self.out.flush()

    async def run(self) -> None:
        """Write periodically until cancelled (then write what is left)."""
        if not self.enabled:
            return
        period = self.refresh_seconds if self.tty else min(self.refresh_seconds, self.plain_seconds)
        try:
            while True:
                await asyncio.sleep(period)
                self.write_once()
        finally:
            self.write_once(final=True)
