"""The one inference worker: windows of all streams, batched, scored in a thread off the event loop.

``submit`` (event loop) appends to a bounded queue; when full, the oldest pending window is dropped
and its future fails with :class:`WindowDropped` (counted). The worker thread takes up to
``max_batch`` pending windows of the same length (oldest first), calls ``scorer.score`` once (or,
for windows submitted with their stream's incremental state, ``scorer.score_windows``: frame
features once per hop, batched across streams; the state lives with the stream, only this thread
touches it), and resolves the futures on the loop with ``call_soon_threadsafe`` (one callback per
batch).

The thread is supervised: when it dies (anything that is not an ``Exception`` escaping the scorer,
such as ``SystemExit`` or ``KeyboardInterrupt`` raised in it, or a bug in the worker itself), the
windows of the batch it held fail with :class:`WorkerCrashed`, and a supervisor task on the loop
starts a new thread after a back-off (``restart_delay`` doubling up to ``max_restart_delay``; reset
once a thread has lived ``stable_seconds``). Queued windows wait for the new thread; the streams'
own state (rolling MOS, alerts, sequence numbers) lives in the Monitor and is untouched.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from samos.monitor import osthread
from samos.monitor.metrics import MonitorMetrics
from samos.runtime.buffers import BatchBuffers

log = logging.getLogger(__name__)


class WindowDropped(Exception):
    """The window was dropped unscored: the inference queue was full (the model cannot keep up)."""


class WorkerCrashed(RuntimeError):
    """The inference thread died while scoring this window (it is restarted; the stream goes on)."""


class ScorerLike(Protocol):
    """What the worker needs of :class:`samos.runtime.Scorer`. A scorer whose ``score`` also takes
    ``finite=`` (as :class:`~samos.runtime.Scorer` does) is told that the windows hold no NaN/Inf (the
    normaliser made them finite), and skips scanning them."""

    def score(self, wave16: np.ndarray, wave48: np.ndarray) -> Any: ...


def takes_finite(method: Any) -> bool:
    """True when ``method`` accepts the keyword ``finite`` (see :class:`ScorerLike`)."""
    try:
        return "finite" in inspect.signature(method).parameters
    except (TypeError, ValueError):  # no signature to read
        return False


@dataclass
class _Job:
    wave16: np.ndarray
    wave48: np.ndarray
    future: asyncio.Future[tuple[float, float]]
    state: Any = None
    """The stream's incremental state (``scorer.new_stream()``); None: score the whole window."""
    start: int = 0
    """The window's first 16 kHz sample in its stream (incremental scoring only)."""


def describe(scorer: Any) -> dict[str, Any]:
    """What subscribers learn about the model: path, provider, version, window and min seconds."""
    info = getattr(scorer, "info", None)
    return {
        "path": str(getattr(scorer, "path", "")),
        "provider": getattr(scorer, "provider", None),
        "version": getattr(info, "version", None),
        "window_seconds": getattr(info, "window_seconds", None),
        "min_seconds": getattr(info, "min_seconds", None),
        "int8": bool(getattr(scorer, "frames_int8", False)),
        "int8_graphs": list(getattr(scorer, "int8_graphs", ())),
    }


class InferenceWorker:
    """Batched scoring in one thread.

    ``start()`` on the loop, ``await submit(...)`` per window, ``await stop()`` at the end.
    """

    def __init__(
        self,
        scorer: ScorerLike,
        max_batch: int = 16,
        queue_size: int = 256,
        metrics: MonitorMetrics | None = None,
        restart_delay: float = 0.1,
        max_restart_delay: float = 5.0,
        stable_seconds: float = 30.0,
    ) -> None:
        if max_batch < 1 or queue_size < 1:
            raise ValueError("max_batch and queue_size must be >= 1")
        if not 0 < restart_delay <= max_restart_delay:
            raise ValueError("restart delays must satisfy 0 < restart_delay <= max_restart_delay")
        self.scorer = scorer
        self._finite = takes_finite(scorer.score)  # tell it the windows are finite (ScorerLike)
        self._finite_windows = takes_finite(getattr(scorer, "score_windows", None))
        self.max_batch = max_batch
        self.queue_size = queue_size
        self.metrics = metrics
        self.dropped = 0
        self.batches = 0
        self.restarts = 0
        """Times the inference thread died and was started again."""
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.stable_seconds = stable_seconds
        self._jobs: deque[_Job] = deque()
        self._buffers = BatchBuffers()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._died: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._started_at = 0.0

    def start(self) -> None:
        """Start the worker thread and its supervisor (call from the loop that awaits the results)."""
        self._loop = asyncio.get_running_loop()
        self._died = asyncio.Event()
        self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="samos-inference:supervisor")

    def _spawn(self) -> None:
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="samos-inference", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while an inference thread is running."""
        return self._thread is not None and self._thread.is_alive()

    async def _supervise(self) -> None:
        """Restart the thread each time it dies, with exponential back-off."""
        assert self._died is not None
        delay = self.restart_delay
        while True:
            await self._died.wait()
            self._died.clear()
            if self._closing:
                return
            if self._thread is not None:
                await asyncio.to_thread(self._thread.join, 1.0)
            if time.monotonic() - self._started_at >= self.stable_seconds:
                delay = self.restart_delay
            log.error("inference worker died; restarting it in %.2f s", delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, self.max_restart_delay)
            if self._closing:
                return
            self.restarts += 1
            if self.metrics is not None:
                self.metrics.worker_restarts.inc()
            self._spawn()

    def submit(
        self, wave16: np.ndarray, wave48: np.ndarray, state: Any = None, start: int = 0
    ) -> asyncio.Future[tuple[float, float]]:
        """Queue one window (``[T]`` at 16 kHz, ``[3T]`` at 48 kHz); the future gives (mos, std).

        ``state``/``start``: the stream's incremental state and the window's first sample (see
        :class:`_Job`); windows of one stream must be submitted in order."""
        if self._loop is None or self._closing:
            raise RuntimeError("the inference worker is not running")
        fut: asyncio.Future[tuple[float, float]] = self._loop.create_future()
        evicted: _Job | None = None
        with self._cond:
            if len(self._jobs) >= self.queue_size:
                evicted = self._jobs.popleft()
            self._jobs.append(_Job(wave16, wave48, fut, state, start))
            self._cond.notify()
        if evicted is not None:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.worker_dropped.inc()
            if not evicted.future.done():
                evicted.future.set_exception(WindowDropped("inference queue full: window dropped"))
        return fut

    def pending(self) -> int:
        return len(self._jobs)

    async def stop(self, timeout: float = 10.0) -> None:
        """Score what is queued, then end the thread (waits up to ``timeout`` s)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
            if self._thread.is_alive():
                log.warning("inference worker did not stop within %.1f s", timeout)
            self._thread = None

    # ------------------------------------------------------------------------------ worker thread
    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs and not self._closing:
                self._cond.wait()
            if not self._jobs:
                return None
            first = self._jobs.popleft()
            batch: list[_Job] = [first]
            rest: deque[_Job] = deque()
            while self._jobs and len(batch) < self.max_batch:
                job = self._jobs.popleft()
                (batch if len(job.wave16) == len(first.wave16) else rest).append(job)
            self._jobs.extendleft(reversed(rest))
            return batch

    def _run(self) -> None:
        osthread.name_current()
        batch: list[_Job] = []
        try:
            self._serve(batch)
        except BaseException as e:  # noqa: BLE001 - the thread dies: fail its batch, let the supervisor restart
            log.error("inference worker died (%s: %s)", type(e).__name__, e)
            crash = WorkerCrashed(f"the inference worker died ({type(e).__name__}: {e}); it is restarted")
            self._post(_resolve, [j.future for j in batch], crash)
            if self._died is not None:
                self._post(self._died.set)

    def _post(self, callback: Any, *args: Any) -> bool:
        """Run ``callback(*args)`` on the loop; False once the loop is closed."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # loop closed
            return False
        return True

    def _serve(self, held: list[_Job]) -> None:
        """Score batches until closed; ``held`` always holds the batch being scored."""
        while (batch := self._take()) is not None:
            held[:] = batch
            batch = [j for j in batch if not j.future.cancelled()]
            if not batch:
                continue
            t0 = time.perf_counter()
            try:
                out = self._score(batch)
                result: Any = (np.asarray(out.mos, np.float64), np.asarray(out.std, np.float64))
            except Exception as e:  # noqa: BLE001 - delivered to each waiting stream, never lost
                log.warning("scoring a batch of %d failed: %s", len(batch), e)
                result = e
            if self.metrics is not None:
                self.metrics.inference.observe(time.perf_counter() - t0)
                self.metrics.batch_size.observe(len(batch))
            self.batches += 1
            held.clear()
            if not self._post(_resolve, [j.future for j in batch], result):
                return

    def _score(self, batch: list[_Job]) -> Any:
        """Scores of one batch: incrementally when every window carries its stream's state."""
        if all(j.state is not None for j in batch):
            from samos.runtime.incremental import WindowJob

            jobs = [WindowJob(j.state, j.start, j.wave16, j.wave48) for j in batch]
            if self._finite_windows:
                return self.scorer.score_windows(jobs, finite=True)  # type: ignore[attr-defined]
            return self.scorer.score_windows(jobs)  # type: ignore[attr-defined]
        w16, w48 = self._stack(batch)
        if self._finite:
            return self.scorer.score(w16, w48, finite=True)  # type: ignore[call-arg]
        return self.scorer.score(w16, w48)

    def _stack(self, batch: list[_Job]) -> tuple[np.ndarray, np.ndarray]:
        """The batch's audio as ``[B, T]`` and ``[B, 3T]``: one window as it is (a view, no copy),
        several stacked into the worker's reused buffers."""
        if len(batch) == 1:
            return batch[0].wave16[None], batch[0].wave48[None]
        return (
            self._buffers.stack(("wave16",), [j.wave16 for j in batch]),
            self._buffers.stack(("wave48",), [j.wave48 for j in batch]),
        )


def _resolve(futures: list[asyncio.Future[tuple[float, float]]], result: Any) -> None:
    for i, f in enumerate(futures):
        if f.done():
            continue
        if isinstance(result, Exception):
            f.set_exception(result)
        else:
            f.set_result((float(result[0][i]), float(result[1][i])))
