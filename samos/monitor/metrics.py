"""Prometheus metrics of the monitor, in its own registry (served by the HTTP app at /metrics)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from samos.monitor.schema import ALERT_KINDS

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MonitorMetrics(CollectorRegistry):
    """A CollectorRegistry (one per Monitor) holding all monitor metrics as attributes.

    Serve it with ``prometheus_client.generate_latest(metrics)`` or :meth:`render`.
    """

    def __init__(self) -> None:
        super().__init__()
        r = self
        self.mos = Gauge("samos_stream_mos", "Latest rolling MOS per stream", ["stream"], registry=r)
        self.windows = Counter(
            "samos_windows_total", "Windows processed per stream and status", ["stream", "status"], registry=r
        )
        self.dropped_audio = Counter(
            "samos_dropped_audio_seconds_total",
            "Audio lost before the pipeline (device overflow, packet loss; concealed or not), seconds",
            ["stream"],
            registry=r,
        )
        self.loss = Gauge(
            "samos_stream_loss_ratio",
            "Fraction of the latest window's duration that was lost audio (concealed or silence)",
            ["stream"],
            registry=r,
        )
        self.inference = Histogram(
            "samos_inference_seconds",
            "Wall time of one Scorer.score batch call",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "samos_inference_batch_size",
            "Windows per inference call",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.latency = Histogram(
            "samos_window_latency_seconds",
            "From a window's last captured sample to its score being published",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.worker_dropped = Counter(
            "samos_worker_dropped_windows_total",
            "Windows dropped unscored because the inference queue was full",
            registry=r,
        )
        self.worker_restarts = Counter(
            "samos_worker_restarts_total", "Times the inference thread died and was restarted", registry=r
        )
        self.clients = Gauge("samos_ws_clients", "Connected websocket clients", registry=r)
        self.ws_dropped = Counter(
            "samos_ws_messages_dropped_total", "Messages dropped for slow websocket clients", registry=r
        )
        self.streams = Gauge("samos_streams", "Streams running now", registry=r)
        self.loop_lag = Gauge(
            "samos_event_loop_lag_seconds", "Lateness of a periodic event-loop timer", registry=r
        )
        self.loop_lag_hist = Histogram(
            "samos_event_loop_lag",
            "Lateness of each tick of the event-loop timer, seconds (spikes between scrapes are kept)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.alerts = Counter(
            "samos_alerts_total", "Alert events per stream", ["stream", "kind", "event"], registry=r
        )
        self.alert_open = Gauge(
            "samos_stream_alert_open",
            "1 while an alert of this kind is open on the stream",
            ["stream", "kind"],
            registry=r,
        )
        self.model = Info(
            "samos_model", "The model in use: path, version and the execution provider running it", registry=r
        )

    def set_model(self, model: dict[str, Any]) -> None:
        """Publish ``samos_model_info{path, version, provider}`` from ``worker.describe(scorer)``."""
        self.model.info({k: str(model.get(k) or "") for k in ("path", "version", "provider")})

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self)

    def forget_stream(self, stream: str) -> None:
        """Remove the per-stream gauges (MOS, loss ratio, open alerts) of an ended stream (counters stay)."""
        labels = [(self.mos, (stream,)), (self.loss, (stream,))]
        labels += [(self.alert_open, (stream, kind)) for kind in ALERT_KINDS]
        for gauge, values in labels:
            try:
                gauge.remove(*values)
            except KeyError:
                pass

    async def watch_loop_lag(self, period: float = 0.25) -> None:
        """Run forever: set the loop-lag gauge from how late a ``period`` sleep wakes up."""
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(period)
            lag = max(0.0, time.perf_counter() - t0 - period)
            self.loop_lag.set(lag)
            self.loop_lag_hist.observe(lag)
