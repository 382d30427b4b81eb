"""Chunked streaming gives exactly the windows and scores of one whole-file chunk (real ONNX model)."""

from __future__ import annotations

import numpy as np
import pytest
from fake_source import split
from monitor_helpers import level_mos, speech_like

from samos.monitor.config import WindowConfig
from samos.monitor.source import AudioChunk
from samos.monitor.stream import score_chunks


@pytest.mark.parametrize("rate", [8_000, 44_100, 48_000])
def test_random_chunks_score_like_one_chunk(rate: int, scorer) -> None:  # noqa: ANN001
    audio = speech_like(9.3, rate, seed=rate)
    rng = np.random.default_rng(rate)
    cfg = WindowConfig(window_seconds=2.0, hop_seconds=0.5)
    whole = score_chunks([AudioChunk(audio, rate)], scorer, cfg)
    sizes = list(rng.integers(1, rate // 10, size=2000))
    chunked = score_chunks([AudioChunk(p, rate) for p in split(audio, sizes)], scorer, cfg)
    assert len(whole) == len(chunked) == 15 + 1  # windows at 0, 0.5 .. 7 s, then one final (9.3 s)
    assert whole[-1][0].window.final
    for (pa, ma, sa), (pb, mb, sb) in zip(whole, chunked, strict=True):
        assert (pa.window.start, pa.status) == (pb.window.start, pb.status)
        assert ma == mb and sa == sb
        if ma is not None:
            assert ma == pytest.approx(level_mos(pa.window.wave48), abs=1e-4)
    assert any(m is not None for _, m, _ in whole)


def test_silence_gets_a_status_not_a_mos(scorer) -> None:  # noqa: ANN001
    audio = np.concatenate([np.zeros(48_000 * 5, np.float32), speech_like(5, 48_000)])
    res = score_chunks([AudioChunk(audio, 48_000)], scorer, WindowConfig())
    statuses = [p.status for p, _, _ in res]
    assert statuses[0] == "silence" and statuses[-1] == "ok"
    assert all((m is None) == (p.status != "ok") for p, m, _ in res)


def test_results_turn_windows_into_score_and_alert_messages() -> None:
    from samos.monitor.config import AggregateConfig, AlertConfig
    from samos.monitor.stream import Pending, StreamResults
    from samos.monitor.window import Window

    res = StreamResults(
        "s", AggregateConfig(horizon_seconds=2.0), AlertConfig(threshold=3.0, min_duration_seconds=1.0)
    )
    out = []
    for i, mos in enumerate([4.0, 2.0, 2.0, 2.0, None]):
        w = Window(
            i, i * 16_000, np.zeros(16_000, np.float32), np.zeros(48_000, np.float32), 10.0, 0.0, 16_000
        )
        status = "ok" if mos is not None else "silence"
        out += res.result(Pending(w, status, {}), status, mos, 0.5 if mos else None, {}, now=10.25)[1]
    scores = [m for m in out if m["type"] == "score"]
    assert [m["rolling_mos"] for m in scores] == [4.0, 3.0, 2.0, 2.0, 2.0]
    assert scores[0]["latency_ms"] == 250.0 and scores[-1]["mos"] is None
    alerts = [m for m in out if m["type"] == "alert"]
    assert [(a["event"], a["t"]) for a in alerts] == [("raise", 4.0)]  # below 3 from t_end=3 to 4
    assert [m["seq"] for m in out] == list(range(len(out))) and res.windows == 5
