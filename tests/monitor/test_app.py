"""The Monitor in-process: fake sources, the real ONNX runtime, a real websocket client."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_source import ListSource, split
from monitor_helpers import level_mos, speech_like
from websockets.asyncio.client import connect

from samos.monitor.app import Monitor
from samos.monitor.config import AlertConfig, MonitorConfig, WebsocketConfig, WindowConfig


def config(tmp_path: Path, **kw: Any) -> MonitorConfig:
    return replace(
        MonitorConfig(
            window=WindowConfig(window_seconds=1.0, hop_seconds=0.5),
            ws=WebsocketConfig(port=0),
            log=str(tmp_path / "log.jsonl"),
        ),
        **kw,
    )


async def collect(url: str, until_ends: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with connect(url) as ws:
        ends = 0
        while ends < until_ends:
            m = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            out.append(m)
            ends += m["type"] == "stream_end"
    return out


async def test_two_streams_end_to_end(tmp_path: Path, scorer) -> None:  # noqa: ANN001
    mon = Monitor(config(tmp_path), scorer)
    await mon.start()
    try:
        assert mon.ws_url is not None
        url = mon.ws_url
        client = asyncio.create_task(collect(url, until_ends=2))
        await asyncio.sleep(0.2)
        quiet, loud = speech_like(3.2, 16_000, 0.02, seed=1), speech_like(3.2, 44_100, 0.3, seed=2)
        names = [
            await mon.add_source(ListSource("call", split(quiet, 320), 16_000, pace=0.001)),
            await mon.add_source(ListSource("call", split(loud, 882), 44_100, pace=0.001)),
        ]
        assert names == ["call", "call-2"]
        msgs = await client
        await mon.wait_idle()
    finally:
        await mon.stop()
    for name in names:
        mine = [m for m in msgs if m["stream"] == name]
        assert [m["seq"] for m in mine] == list(range(len(mine)))
        assert mine[0]["type"] == "stream_start" and mine[-1]["type"] == "stream_end"
        assert mine[-2]["type"] == "stream_summary" and mine[-2]["windows"] == 5
        scores = [m for m in mine if m["type"] == "score"]
        assert [s["window"] for s in scores] == list(range(len(scores))) and len(
            scores
        ) == 5  # 0, 0.5 .. 2 s; the 0.2 s tail is under half a hop
        assert mine[-1]["reason"] == "ended" and mine[-1]["windows"] == len(scores)
        for s in scores:
            assert s["status"] == "ok" and isinstance(s["mos"], float) and isinstance(s["rolling_mos"], float)
            assert s["t_end"] - s["t_start"] == pytest.approx(1.0)
    by = {n: [m["mos"] for m in msgs if m["stream"] == n and m["type"] == "score"] for n in names}
    assert min(by["call"]) > max(by["call-2"])  # the level model: quiet scores higher than loud
    logged = [
        json.loads(x) for x in (await asyncio.to_thread((tmp_path / "log.jsonl").read_text)).splitlines()
    ]
    assert [x["type"] for x in logged].count("score") == 10
    assert [x["type"] for x in logged].count("stream_summary") == 2 and len(logged) == 12
    assert mon.metrics.get_sample_value("samos_windows_total", {"stream": "call", "status": "ok"}) == 5


async def test_scores_match_offline_scoring(tmp_path: Path, scorer) -> None:  # noqa: ANN001
    audio = speech_like(2.6, 48_000, 0.05, seed=5)
    mon = Monitor(config(tmp_path), scorer)
    await mon.start()
    client = asyncio.create_task(collect(mon.ws_url, 1))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    await mon.add_source(ListSource("x", split(audio, 960), 48_000))
    msgs = await client
    await mon.stop()
    scores = [m for m in msgs if m["type"] == "score"]
    from samos.audio import resample

    a48 = resample(audio, 48_000, 48_000)
    for s in scores[:-1]:
        i = round(s["t_start"] * 48_000)
        assert s["mos"] == pytest.approx(level_mos(a48[i : i + 48_000]), abs=2e-3)


async def test_stop_ends_live_streams_with_stream_end(tmp_path: Path, scorer) -> None:  # noqa: ANN001
    mon = Monitor(config(tmp_path), scorer)
    await mon.start()
    client = asyncio.create_task(collect(mon.ws_url, 1))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    src = ListSource("live", split(speech_like(2.0, 16_000), 160), 16_000, pace=0.002, forever=True)
    await mon.add_source(src)
    await asyncio.sleep(0.5)
    await mon.stop()
    msgs = await client
    assert msgs[-1]["type"] == "stream_end" and msgs[-1]["reason"] == "stopped" and src.closed
    assert not mon.streams


async def test_failing_source_and_alerts(tmp_path: Path, scorer) -> None:  # noqa: ANN001
    cfg = config(tmp_path, alerts=AlertConfig(threshold=2.5, hysteresis=0.2, min_duration_seconds=1.0))
    mon = Monitor(cfg, scorer)
    await mon.start()
    client = asyncio.create_task(collect(mon.ws_url, 1))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    loud = speech_like(4.0, 16_000, 0.4, seed=3)  # the level model scores this far below 2.5
    await mon.add_source(ListSource("bad", split(loud, 1600), 16_000, fail=OSError("cable unplugged")))
    msgs = await client
    await mon.stop()
    alerts = [m for m in msgs if m["type"] == "alert"]
    assert alerts and alerts[0]["event"] == "raise" and alerts[0]["rolling_mos"] < 2.5
    assert msgs[-1]["reason"] == "error" and "cable unplugged" in msgs[-1]["error"]
    assert np.all([m["seq"] == i for i, m in enumerate(x for x in msgs if x["stream"] == "bad")])


async def test_dropped_audio_is_counted(tmp_path: Path, scorer) -> None:  # noqa: ANN001
    mon = Monitor(config(tmp_path), scorer)
    await mon.start()
    await mon.add_source(ListSource("d", split(speech_like(1.5, 16_000), 1600), 16_000, dropped={3: 800}))
    await mon.wait_idle()
    await mon.stop()
    assert mon.metrics.get_sample_value("samos_dropped_audio_seconds_total", {"stream": "d"}) == 0.05
    assert "samos_event_loop_lag_seconds" in mon.metrics.render().decode()
    # the lost 50 ms stay in the stream at their place (0.3 s), as silence: the first 1 s window holds
    # them (loss ratio 0.05), the next one does not, and stream time still counts them
    logged = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    scores = [m for m in logged if m["type"] == "score"]
    assert [(m["t_start"], m["t_end"]) for m in scores] == [(0.0, 1.0), (0.5, 1.5)]
    assert [m["diagnostics"]["loss_ratio"] for m in scores] == [0.05, 0.0]
    assert scores[0]["diagnostics"]["dropped_seconds"] == 0.05


async def test_overloaded_worker_reports_dropped_windows(tmp_path: Path, scorer) -> None:  # noqa: ANN001
    from samos.monitor.config import WorkerConfig

    cfg = config(
        tmp_path, worker=WorkerConfig(providers=("cpu",), max_batch=1, queue_size=1, inflight_per_stream=4)
    )
    mon = Monitor(cfg, scorer)
    await mon.start()
    audio = speech_like(4.0, 16_000, seed=7)
    for i in range(4):
        await mon.add_source(ListSource(f"s{i}", split(audio, 16_000), 16_000))
    await mon.wait_idle()
    await mon.stop()
    total = sum(
        mon.metrics.get_sample_value("samos_windows_total", {"stream": f"s{i}", "status": s}) or 0
        for i in range(4)
        for s in ("ok", "dropped")
    )
    dropped = mon.metrics.get_sample_value("samos_worker_dropped_windows_total")
    assert total == 4 * 7 and dropped and dropped > 0
    assert (
        sum(
            mon.metrics.get_sample_value("samos_windows_total", {"stream": f"s{i}", "status": "dropped"}) or 0
            for i in range(4)
        )
        == dropped
    )


async def test_the_model_description_says_whether_windows_are_scored_incrementally() -> None:
    from dataclasses import replace

    from samos.monitor.app import Monitor
    from samos.monitor.config import MonitorConfig
    from samos.runtime.scorer import Scorer

    scorer = Scorer(None, providers=("cpu",), threads=1)
    cfg = MonitorConfig()
    on = Monitor(cfg, scorer).model
    assert on["incremental"] is True and on["int8"] is True and on["int8_graphs"] == ["frames", "head"]
    off = replace(cfg, worker=replace(cfg.worker, incremental=False))
    whole = Monitor(off, scorer).model
    assert whole["incremental"] is False and whole["int8"] is False and whole["int8_graphs"] == []
