from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, generate_latest

from samos.monitor.metrics import MonitorMetrics


def test_is_a_registry_with_every_metric() -> None:
    m = MonitorMetrics()
    assert isinstance(m, CollectorRegistry)
    m.mos.labels("a").set(3.5)
    m.windows.labels("a", "ok").inc()
    m.dropped_audio.labels("a").inc(0.02)
    m.loss.labels("a").set(0.2)
    m.inference.observe(0.01)
    m.clients.set(2)
    m.ws_dropped.inc(3)
    text = generate_latest(m).decode()
    for name in (
        "samos_stream_mos",
        "samos_windows_total",
        "samos_dropped_audio_seconds_total",
        "samos_stream_loss_ratio",
        "samos_inference_seconds",
        "samos_ws_clients",
        "samos_ws_messages_dropped_total",
        "samos_event_loop_lag_seconds",
        "samos_window_latency_seconds",
    ):
        assert name in text
    m.forget_stream("a")
    m.forget_stream("never-existed")
    assert m.get_sample_value("samos_stream_mos", {"stream": "a"}) is None
    assert m.get_sample_value("samos_stream_loss_ratio", {"stream": "a"}) is None
    assert m.get_sample_value("samos_windows_total", {"stream": "a", "status": "ok"}) == 1


async def test_loop_lag_sees_a_blocked_loop() -> None:
    m = MonitorMetrics()
    task = asyncio.create_task(m.watch_loop_lag(period=0.02), name="lag")
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # noqa: ASYNC251 - block the loop on purpose
    await asyncio.sleep(0.01)
    lag = m.get_sample_value("samos_event_loop_lag_seconds")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert lag is not None and lag > 0.1


def test_model_info_names_the_provider() -> None:
    m = MonitorMetrics()
    m.set_model({"path": "/m/default.onnx", "provider": "cpu", "version": "0.1.0", "window_seconds": 4.0})
    text = generate_latest(m).decode()
    assert 'samos_model_info{path="/m/default.onnx",provider="cpu",version="0.1.0"} 1.0' in text
