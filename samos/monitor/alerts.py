"""Alerts on a stream's rolling MOS: hysteresis + minimum duration; webhook and JSONL log sinks.

:class:`AlertState` is pure: ``update(t, rolling_mos)`` returns ``"raise"``, ``"clear"`` or None.
It raises once the rolling MOS has stayed below ``threshold`` for ``min_duration`` seconds of
stream time, and clears once it has stayed at or above ``threshold + hysteresis`` as long. A window
without a rolling MOS (silence) neither raises nor clears, and resets the pending timer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


class AlertState:
    """Hysteresis alert state machine for one stream (stream seconds, MOS units)."""

    def __init__(self, threshold: float, hysteresis: float, min_duration: float) -> None:
        self.threshold = threshold
        self.clear_level = threshold + hysteresis
        self.min_duration = min_duration
        self.active = False
        self._since: float | None = None  # when the condition for a change began

    def update(self, t: float, rolling_mos: float | None) -> str | None:
        """Feed the rolling MOS at stream time ``t``; return an event name when the state changes."""
        if rolling_mos is None:
            self._since = None
            return None
        crossing = rolling_mos >= self.clear_level if self.active else rolling_mos < self.threshold
        if not crossing:
            self._since = None
            return None
        if self._since is None:
            self._since = t
        if t - self._since >= self.min_duration:
            self.active = not self.active
            self._since = None
            return "raise" if self.active else "clear"
        return None

    def duration(self, t: float) -> float:
        """Seconds the current pending condition has held (0 when none)."""
        return 0.0 if self._since is None else t - self._since


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
