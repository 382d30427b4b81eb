"""The Monitor: owns the streams, the inference worker, the websocket publisher and the HTTP app.

Each stream (one :class:`~samos.monitor.source.Source`) runs as three named tasks owned by the
Monitor: a supervisor, a reader (recv -> normalise -> window -> diagnostics -> submit) and a scorer
(await scores in order -> rolling MOS -> alerts -> publish). A stream has at most
``worker.inflight_per_stream`` windows waiting for scores; beyond that its reader waits (a live
source then drops audio in its own bounded queue, a file source is simply read more slowly).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from samos.monitor import heap
from samos.monitor.alerts import JsonlLog, Webhook
from samos.monitor.config import MonitorConfig
from samos.monitor.history import History
from samos.monitor.metrics import MonitorMetrics
from samos.monitor.publish import Publisher
from samos.monitor.schema import ALERT_KINDS, encode
from samos.monitor.source import Source, SourceEnded
from samos.monitor.stream import Pending, StreamProcessor, StreamResults
from samos.monitor.summary import CallSummary
from samos.monitor.worker import InferenceWorker, ScorerLike, WindowDropped, describe

log = logging.getLogger(__name__)


class MonitorError(ValueError):
    """The monitor cannot start as configured."""


@dataclass(eq=False)
class _Stream:
    name: str
    source: Source
    proc: StreamProcessor
    results: StreamResults
    queue: asyncio.Queue[tuple[Pending, asyncio.Future[tuple[float, float]] | None] | None]
    summary: CallSummary
    frames: Any = None
    """The stream's incremental state (the scorer's ``new_stream()``); None: whole windows."""
    windows: int = 0
    reader: asyncio.Task[None] = field(init=False)
    task: asyncio.Task[None] = field(init=False)


class Monitor:
    """The real-time pipeline for any number of streams.

    ``await start()``; ``await add_source(src)`` per stream; ``await stop()`` drains and closes.
    ``metrics`` is the Prometheus registry; ``publisher`` the websocket side.
    """

    def __init__(self, cfg: MonitorConfig, scorer: ScorerLike) -> None:
        self.cfg = cfg
        self.scorer = scorer
        self.metrics = MonitorMetrics()
        self.publisher = Publisher(
            self.metrics,
            cfg.ws.client_queue,
            cfg.ws.max_clients,
            cfg.auth.token,
            max_message_bytes=cfg.ws.max_message_bytes,
            allowed_origins=cfg.ws.allowed_origins,
            batch_seconds=cfg.ws.batch_seconds,
        )
        self.worker = InferenceWorker(scorer, cfg.worker.max_batch, cfg.worker.queue_size, self.metrics)
        self.streams: dict[str, _Stream] = {}
        self.history = History(cfg.history)
        """Every stream's state and recent messages, for the console and /api/streams."""
        self.ws_address: tuple[str, int] | None = None
        """(host, port) the websocket server listens on, once started."""
        self.http_address: tuple[str, int] | None = None
        self.jsonl = JsonlLog(cfg.log) if cfg.log else None
        self.webhook = (
            Webhook(cfg.alerts.webhook, cfg.alerts.webhook_timeout_seconds) if cfg.alerts.webhook else None
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._lag_task: asyncio.Task[None] | None = None
        self._trim_task: asyncio.Task[None] | None = None
        self._http_runner: Any = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = False
        self._stopping = False
        self.model = describe(scorer)
        self.model["incremental"] = bool(cfg.worker.incremental and getattr(scorer, "pair", None) is not None)
        """Windows are scored with the model's incremental pair (docs/MONITOR.md)."""
        self.model["int8"] = bool(self.model["incremental"] and self.model.get("int8"))
        """...with its static-int8 frames graph (docs/MONITOR.md, "Int8 frames")..."""
        self.model["int8_graphs"] = self.model.get("int8_graphs", []) if self.model["int8"] else []
        """...and which of the pair's graphs run in int8 (``frames``, ``head``)."""
        self.min_seconds = float(self.model["min_seconds"] or 0.0)
        self.metrics.set_model(self.model)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with every message the Monitor publishes (e.g. the console's status board)."""

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the worker, the websocket server and (when enabled) the HTTP app."""
        if self._started:
            return
        self.worker.start()
        self._started = True
        self._lag_task = asyncio.create_task(self.metrics.watch_loop_lag(), name="monitor:loop-lag")
        if self.cfg.heap_mmap_threshold_bytes is not None:
            heap.fix_mmap_threshold(self.cfg.heap_mmap_threshold_bytes)
        if self.cfg.heap_trim_seconds is not None:
            self._trim_task = asyncio.create_task(
                heap.trim_every(self.cfg.heap_trim_seconds), name="monitor:heap-trim"
            )
        if self.cfg.ws.enabled:
            self.ws_address = await self.publisher.start(self.cfg.ws.host, self.cfg.ws.port)
        if self.cfg.http.enabled:
            await self._start_http()

    async def _start_http(self) -> None:
        try:
            from aiohttp import web

            from samos.monitor.http import build_http_app
        except ImportError as e:
            raise MonitorError(f"the HTTP/WebRTC side is not available ({e})") from None
        app = build_http_app(self, self.cfg)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.http.host, self.cfg.http.port)
        await site.start()
        self._http_runner = runner
        sock = next(iter(site._server.sockets)) if site._server else None  # type: ignore[union-attr,attr-defined]
        name = sock.getsockname() if sock is not None else (self.cfg.http.host, self.cfg.http.port)
        self.http_address = (str(name[0]), int(name[1]))

    @property
    def ws_url(self) -> str | None:
        """``ws://host:port/`` of the websocket server (None when it is off or not started)."""
        if self.ws_address is None:
            return None
        host, port = self.ws_address
        return f"ws://[{host}]:{port}/" if ":" in host else f"ws://{host}:{port}/"

    async def add_source(self, source: Source) -> str:
        """Start a stream for ``source``; returns its (unique) stream name."""
        if not self._started or self._stopping:
            raise MonitorError("the monitor is not running (start() it first; it may be shutting down)")
        name = self._unique(source.name or source.kind or "stream")
        w = self.cfg.window
        st = _Stream(
            name=name,
            source=source,
            proc=StreamProcessor(source.rate, w, self.min_seconds),
            results=StreamResults(name, self.cfg.aggregate, self.cfg.alerts),
            queue=asyncio.Queue(self.cfg.worker.inflight_per_stream),
            summary=CallSummary(self.cfg.alerts.threshold),
            frames=self._new_stream_frames(),
        )
        self.streams[name] = st
        self._idle.clear()
        self.metrics.streams.set(len(self.streams))
        for kind in ALERT_KINDS:
            self.metrics.alert_open.labels(name, kind).set(0)
        self._emit(
            st,
            st.results.messages.stream_start(
                source.kind, source.rate, w.window_seconds, w.hop_seconds, self.model
            ),
        )
        st.reader = asyncio.create_task(self._read(st), name=f"monitor:read:{name}")
        st.task = asyncio.create_task(self._supervise(st), name=f"monitor:stream:{name}")
        self._tasks.add(st.task)
        st.task.add_done_callback(self._task_done)
        log.info("stream %s started (%s, %d Hz)", name, source.kind, source.rate)
        return name

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s failed: %r", task.get_name(), exc)

    def _unique(self, base: str) -> str:
        name, i = base, 2
        while name in self.streams:
            name, i = f"{base}-{i}", i + 1
        return name

    async def wait_idle(self) -> None:
        await self._idle.wait()  # no stream running

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop every stream (final windows are scored, stream_end sent), then close everything."""
        self._stopping = True
        for st in list(self.streams.values()):
            st.reader.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for t in (self._lag_task, self._trim_task):
            if t is not None:
                t.cancel()
                await asyncio.gather(t, return_exceptions=True)
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None
        await self.publisher.close()
        if self._started:
            await self.worker.stop()
        if self.webhook is not None:
            await self.webhook.close()
        if self.jsonl is not None:
            self.jsonl.close()
        self._started = False

    # ------------------------------------------------------------------------------ per stream
    async def _supervise(self, st: _Stream) -> None:
        scorer = asyncio.create_task(self._score(st), name=f"monitor:score:{st.name}")
        reason, error = "ended", None
        try:
            await asyncio.wait({st.reader})
            if st.reader.cancelled():
                reason = "stopped"
            elif (exc := st.reader.exception()) is not None:
                reason, error = "error", f"{type(exc).__name__}: {exc}"
                log.error("stream %s failed: %s", st.name, error)
            if reason != "error":
                for p in st.proc.flush():
                    await self._enqueue(st, p)
            await st.queue.put(None)
            await scorer
        finally:
            for t in (st.reader, scorer):
                if not t.done():
                    t.cancel()
            await asyncio.gather(st.reader, scorer, return_exceptions=True)
            summary = st.results.messages.stream_summary(
                reason=reason, summary=st.summary.result(st.proc.seconds)
            )
            self._emit(st, summary)
            if self.webhook is not None:
                self.webhook.post(summary)
            self._emit(
                st,
                st.results.messages.stream_end(
                    reason=reason,
                    windows=st.results.windows,
                    seconds=st.proc.seconds,
                    rolling_mos=st.results.rolling.value.mos,
                    error=error,
                ),
            )
            try:
                await st.source.close()
            except Exception as e:  # noqa: BLE001 - a failing close must not hide the stream's end
                log.warning("closing stream %s: %s", st.name, e)
            del self.streams[st.name]
            self.metrics.forget_stream(st.name)
            self.metrics.streams.set(len(self.streams))
            if not self.streams:
                self._idle.set()
            log.info("stream %s ended (%s)", st.name, reason)

    async def _read(self, st: _Stream) -> None:
        dropped = self.metrics.dropped_audio.labels(st.name)
        while True:
            try:
                chunk = await st.source.recv()
            except SourceEnded:
                return
            if chunk.dropped or chunk.concealed:
                dropped.inc((chunk.dropped + chunk.concealed) / chunk.rate)
            for p in st.proc.push(chunk):
                await self._enqueue(st, p)

    def _new_stream_frames(self) -> Any:
        """Incremental state for a new stream, when configured and the model has a pair."""
        new_stream = getattr(self.scorer, "new_stream", None)
        return new_stream() if self.cfg.worker.incremental and new_stream is not None else None

    async def _enqueue(self, st: _Stream, p: Pending) -> None:
        w = p.window
        fut = self.worker.submit(w.wave16, w.wave48, st.frames, w.start) if p.status == "ok" else None
        await st.queue.put((p, fut))

    async def _score(self, st: _Stream) -> None:
        while (item := await st.queue.get()) is not None:
            p, fut = item
            status, mos, std, diag = p.status, None, None, p.diagnostics
            if fut is not None:
                try:
                    mos, std = await fut
                except WindowDropped:
                    status = "dropped"
                except Exception as e:  # noqa: BLE001 - the model refused this window; the stream goes on
                    status, diag = "error", {**diag, "error": str(e)}
            self._publish_score(st, p, status, mos, std, diag)

    def _publish_score(
        self, st: _Stream, p: Pending, status: str, mos: float | None, std: float | None, diag: dict[str, Any]
    ) -> None:
        now = time.monotonic()
        roll, messages = st.results.result(p, status, mos, std, diag, now)
        self.metrics.windows.labels(st.name, status).inc()
        self.metrics.latency.observe(max(0.0, now - p.window.t_capture))
        self.metrics.loss.labels(st.name).set(p.window.loss_ratio)
        if roll.mos is not None:
            self.metrics.mos.labels(st.name).set(roll.mos)
        for msg in messages:
            self._emit(st, msg)
            if msg["type"] == "alert":
                self.metrics.alerts.labels(st.name, msg["kind"], msg["event"]).inc()
                self.metrics.alert_open.labels(st.name, msg["kind"]).set(1 if msg["event"] == "raise" else 0)
                if self.webhook is not None:
                    self.webhook.post(msg)

    def _emit(self, st: _Stream, msg: dict[str, Any]) -> None:
        text = encode(msg)
        st.summary.add(msg)
        self.history.record(msg, text, time.time())
        # On disk first: a subscriber may get the message the moment it is published, and whatever a
        # subscriber saw must survive a crash right after.
        if self.jsonl is not None and msg["type"] in ("score", "alert", "stream_summary"):
            try:
                self.jsonl.write(msg)
            except OSError as e:  # a full disk must not stop the monitor
                log.error("JSONL log %s: %s; logging stopped", self.jsonl.path, e)
                self.jsonl.close()
                self.jsonl = None
        self.publisher.publish(msg, text)
        for listener in self.listeners:
            try:
                listener(msg)
            except Exception:  # a broken listener must not stop the stream
                log.exception("listener %r failed", listener)
