"""deploy/grafana's dashboard queries only metrics a running monitor exports at /metrics, and
deploy/prometheus's example scrapes that path."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import yaml
from fake_source import ListSource, split
from monitor_helpers import speech_like

from samos.monitor.app import Monitor
from samos.monitor.config import (
    AggregateConfig,
    AlertConfig,
    HttpConfig,
    MonitorConfig,
    WebsocketConfig,
    WindowConfig,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "samos-dashboard.json"
METRIC = re.compile(r"\bsamos_[a-z0-9_]+")
PROMQL_WORDS = {"by", "le", "rate", "sum"}


def dashboard_metrics() -> set[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    return {m for e in exprs for m in METRIC.findall(e)}


def exported(text: str) -> set[str]:
    """Series names in a Prometheus text exposition (sample names and # TYPE names)."""
    names = set(re.findall(r"^# TYPE (\S+)", text, re.M))
    names |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))
    return names


async def test_every_dashboard_metric_is_exported(tmp_path: Path, scorer: Any) -> None:
    cfg = MonitorConfig(
        window=WindowConfig(window_seconds=1.0, hop_seconds=0.5),
        aggregate=AggregateConfig(horizon_seconds=2.0),
        alerts=AlertConfig(threshold=2.5, min_duration_seconds=1.0),
        ws=WebsocketConfig(port=0),
        http=HttpConfig(enabled=True, port=0),
    )
    mon = Monitor(cfg, scorer)
    await mon.start()
    try:
        good, bad = speech_like(2.0, 16_000, 0.01, seed=1), speech_like(4.0, 16_000, 0.4, seed=2)
        audio = np.concatenate([good, bad])
        await mon.add_source(ListSource("a", split(audio, 320), 16_000, forever=True, dropped={3: 160}))
        for _ in range(100):
            raised = {"stream": "a", "kind": "low_mos", "event": "raise"}
            if mon.metrics.get_sample_value("samos_alerts_total", raised):
                break
            await asyncio.sleep(0.1)
        assert mon.http_address is not None
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{mon.http_address[1]}/metrics") as r,
        ):
            text = await r.text()
        assert 'samos_stream_alert_open{kind="low_mos",stream="a"} 1.0' in text
        assert 'samos_stream_alert_open{kind="no_speech",stream="a"} 0.0' in text
    finally:
        await mon.stop()
    missing = sorted(dashboard_metrics() - exported(text) - PROMQL_WORDS)
    assert not missing, f"deploy/grafana queries metrics /metrics does not export: {missing}"


def test_the_prometheus_example_scrapes_metrics() -> None:
    cfg = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    [job] = cfg["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"]
    dash = json.loads(DASHBOARD.read_text())
    assert {p["datasource"]["uid"] for p in dash["panels"]} == {"${datasource}"}
