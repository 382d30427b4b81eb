"""Alerts on a stream: low quality (rolling MOS) and lost speech; webhook and JSONL log sinks.

:class:`AlertState` (kind ``low_mos``) is pure: ``update(t, rolling_mos, scored)`` returns an
:class:`Event` or None. It raises once the rolling MOS of scored windows has stayed below
``threshold`` for ``min_duration`` seconds of stream time, and clears once it has stayed at or above
``threshold + hysteresis`` as long. Windows without a MOS (silence, no speech, dropped) are no
evidence either way: they neither start, restart nor complete a pending change, and never clear an
open alert. Only when no window at all was scored for ``stale_seconds`` does the state give up: an
open alert clears with reason ``no_scores`` (saying that the quality is unknown, not good) and a
pending change is forgotten.

:class:`SpeechLostState` (kind ``no_speech``) raises when a stream that carried speech has had none
(only ``silence`` or ``no_speech`` windows) for ``after_seconds``, and clears once speech is back and
good: the rolling MOS of scored windows at or above ``clear_level`` for ``min_duration`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

NO_SPEECH_STATUSES = frozenset({"silence", "no_speech"})
"""Window statuses that mean nobody is talking (the others had speech, scored or not)."""


@dataclass(frozen=True)
class Event:
    """A change of an alert: ``kind`` (``low_mos``, ``no_speech``), ``event`` (``raise``, ``clear``),
    ``reason`` (why: ``low_mos``, ``recovered``, ``no_scores``, ``no_speech``, ``speech``),
    ``duration_seconds`` (stream seconds the condition held) and a one-line ``message``."""

    kind: str
    event: str
    reason: str
    duration_seconds: float
    message: str


class AlertState:
    """Low-MOS alert of one stream: hysteresis, minimum duration, and scoring gaps (see module doc)."""

    def __init__(
        self, threshold: float, hysteresis: float, min_duration: float, stale_seconds: float | None = None
    ) -> None:
        self.threshold = threshold
        self.clear_level = threshold + hysteresis
        self.min_duration = min_duration
        self.stale_seconds = stale_seconds
        self.active = False
        self._since: float | None = None  # when the condition for a change began (a scored window)
        self._last_scored: float | None = None

    def update(self, t: float, rolling_mos: float | None, scored: bool = True) -> Event | None:
        """Feed a window ending at stream time ``t`` (s): ``scored`` when it got a MOS, and the
        rolling MOS then. Returns the event when the state changes."""
        if not scored or rolling_mos is None:
            return self._unscored(t)
        self._last_scored = t
        crossing = rolling_mos >= self.clear_level if self.active else rolling_mos < self.threshold
        if not crossing:
            self._since = None
            return None
        if self._since is None:
            self._since = t
        held = t - self._since
        if held < self.min_duration:
            return None
        self.active = not self.active
        self._since = None
        if self.active:
            return Event(
                "low_mos", "raise", "low_mos", held,
                f"rolling MOS {rolling_mos:.2f} below {self.threshold:g} for {held:.0f} s",
            )
        return Event(
            "low_mos", "clear", "recovered", held,
            f"rolling MOS {rolling_mos:.2f} at or above {self.clear_level:g} for {held:.0f} s",
        )

    def _unscored(self, t: float) -> Event | None:
        if self.stale_seconds is None or self._last_scored is None:
            return None
        gap = t - self._last_scored
        if gap < self.stale_seconds:
            return None
        self._since = None
        if not self.active:
            return None
        self.active = False
        return Event(
            "low_mos", "clear", "no_scores", gap,
            f"cleared for lack of scores: no window was scored for {gap:.0f} s "
            "(silence or no speech); the quality is unknown, not known to be good",
        )

    def duration(self, t: float) -> float:
        """Seconds the current pending condition has held (0 when none)."""
        return 0.0 if self._since is None else t - self._since


class SpeechLostState:
    """``no_speech`` alert of one stream (see module doc); stream seconds, MOS units.

    Clearing needs the rolling MOS of scored windows at or above ``clear_level`` for
    ``min_duration`` seconds, like the low-MOS alert: the first windows after the gap still hold
    noise, and the rolling MOS may still hold windows from before it.
    """

    def __init__(self, after_seconds: float, clear_level: float, min_duration: float = 0.0) -> None:
        self.after_seconds = after_seconds
        self.clear_level = clear_level
        self.min_duration = min_duration
        self.active = False
        self._last_speech: float | None = None  # end of the last window with speech
        self._good_since: float | None = None  # while active: since when speech is back and good

    def update(
        self, t: float, status: str, rolling_mos: float | None, level_db: float | None
    ) -> Event | None:
        """Feed a window ending at ``t`` with its status, the rolling MOS and its level (dBov)."""
        if self.active:
            return self._while_active(t, status, rolling_mos)
        if status not in NO_SPEECH_STATUSES:
            self._last_speech = t
            return None
        if self._last_speech is None:
            return None  # never spoke: nothing was lost
        quiet = t - self._last_speech
        if quiet < self.after_seconds:
            return None
        self.active = True
        self._good_since = None
        what = "dead air" if status == "silence" else "no speech"
        level = f" at {level_db:.0f} dBFS" if level_db is not None else ""
        msg = f"{what}{level} for {quiet:.0f} s after speech"
        return Event("no_speech", "raise", "no_speech", quiet, msg)

    def _while_active(self, t: float, status: str, rolling_mos: float | None) -> Event | None:
        if status in NO_SPEECH_STATUSES or (
            status == "ok" and (rolling_mos is None or rolling_mos < self.clear_level)
        ):
            self._good_since = None
            return None
        if status != "ok":  # dropped / error: no evidence either way
            return None
        if self._good_since is None:
            self._good_since = t
        held = t - self._good_since
        if held < self.min_duration:
            return None
        self.active = False
        quiet = t - (self._last_speech if self._last_speech is not None else t)
        self._last_speech = t
        self._good_since = None
        return Event(
            "no_speech", "clear", "speech", quiet,
            f"speech is back, rolling MOS {rolling_mos:.2f} at or above {self.clear_level:g} "
            f"for {held:.0f} s",
        )


class JsonlLog:
    """Append one JSON object per line, flushed per record (a score or an alert)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] | None = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self._f is None:
            return
        self._f.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class Webhook:
    """POST alert messages as JSON to a URL in the background; failures are logged, never raised.

    At most ``max_pending`` posts are in flight; beyond that new alerts are dropped and counted.
    """

    def __init__(self, url: str, timeout: float = 5.0, max_pending: int = 16) -> None:
        self.url = url
        self.timeout = timeout
        self.max_pending = max_pending
        self.failed = 0
        self.dropped = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: Any = None

    def post(self, message: dict[str, Any]) -> None:
        """Schedule a POST (returns at once)."""
        if len(self._tasks) >= self.max_pending:
            self.dropped += 1
            log.warning("webhook %s: %d posts pending, alert dropped", self.url, len(self._tasks))
            return
        task = asyncio.create_task(
            self._post(message), name=f"webhook:{message.get('stream')}:{message.get('seq')}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, message: dict[str, Any]) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(self.url, json=message) as resp:
                if resp.status >= 400:
                    self.failed += 1
                    log.warning("webhook %s answered HTTP %d", self.url, resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            self.failed += 1
            log.warning("webhook %s failed: %s", self.url, e)

    async def close(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` s for pending posts, cancel the rest, close the session."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
