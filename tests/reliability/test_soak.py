"""Load and soak on loopback through `samos bench soak`: a real ``monitor`` process, real aiortc
publishers (pre-encoded Opus) in their own processes, real websocket subscribers.

CI runs the short version (4 publishers x 20 subscribers x 20 s) with the tiny model of the suite,
so that what is measured is the pipeline, not inference. The full one (32 x 200 x 600 s):
``pytest -m slow tests/reliability/test_soak.py -s`` (sizes from SAMOS_SOAK_PUBLISHERS,
SAMOS_SOAK_SUBSCRIBERS, SAMOS_SOAK_SECONDS) or ``samos bench soak`` (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samos.bench import soak, webrtc_load

WINDOW, HOP = 1.0, 0.5


def check(report: dict[str, Any]) -> None:
    print("\nsoak:", json.dumps(report))
    assert report["streams_cut_short"] == {}, report["end_reasons"]
    assert report["lost_messages"] == 0 and report["reported_dropped"] == 0
    assert report["all_ended"]
    assert report["delivered_min"] >= 0.95
    assert report["rss_growth"] < 0.10
    assert report["passed"]


async def _soak(
    model: Path, tmp: Path, publishers: int, subscribers: int, seconds: float, window: float = WINDOW,
    hop: float = HOP
) -> dict[str, Any]:
    return await soak.run_soak(
        publishers=publishers,
        subscribers=subscribers,
        seconds=seconds,
        window=window,
        hop=hop,
        monitor_args=["--model", str(model), "--providers", "cpu", "--threads", "1"],
        log=tmp / "monitor.log",
        publisher_procs=max(1, publishers // 16),
    )


@pytest.mark.timeout(240)
async def test_soak_short(model_path: Path, tmp_path: Path) -> None:
    report = await _soak(model_path, tmp_path, 4, 20, 20.0)
    check(report)
    assert report["publishers"] == 4 and report["scores_received"] >= 20 * 4 * 30
    # end to end (publisher's send -> subscriber) includes the window's batching and the kernel's
    # queues: positive, and far below the seconds a backlog would show
    assert 0 < report["e2e_p50_ms"] <= report["e2e_p95_ms"] < 3000
    assert 0 < report["cpu_s_per_stream_s"] < 1.0
    lag = report["event_loop_lag"]
    assert lag is not None and lag["ticks"] > 40  # 20 s of 250 ms ticks


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_soak_full(tmp_path: Path) -> None:
    from samos.bench.level_model import make_level_model

    env = os.environ.get
    check(
        await _soak(
            make_level_model(tmp_path / "level4.onnx", window_seconds=4.0),
            tmp_path,
            publishers=int(env("SAMOS_SOAK_PUBLISHERS", "32")),
            subscribers=int(env("SAMOS_SOAK_SUBSCRIBERS", "200")),
            seconds=float(env("SAMOS_SOAK_SECONDS", "600")),
            window=4.0,  # the monitor's defaults (configs/monitor.yaml), as `samos bench soak` runs it
            hop=1.0,
        )
    )


async def test_opus_packets_replay_paced_and_end() -> None:
    from aiortc.mediastreams import MediaStreamError

    audio = (0.2 * np.sin(2 * np.pi * 300 * np.arange(48_000) / 48_000)).astype(np.float32)
    packets = webrtc_load.encode_opus(audio)
    assert 50 <= len(packets) <= 52  # 1 s of 20 ms frames, plus the encoder's flush
    assert all(0 < len(p) < 400 for p in packets)
    track = webrtc_load.OpusReplayTrack(packets[:3], seconds=0.1)  # loops over its 3 packets
    t0 = time.monotonic()
    got = [await track.recv() for _ in range(5)]
    assert time.monotonic() - t0 >= 0.075  # the 5th packet is due 80 ms after the first
    assert [p.pts for p in got] == [0, 960, 1920, 2880, 3840]
    assert bytes(got[3]) == packets[0] and track.sent == 5
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_side_by_side_prints_both_runs_and_their_ratios() -> None:
    stock = {"delivered_min": 0.5, "e2e_p95_ms": 8000.0, "rss_growth": -0.01, "passed": False,
             "event_loop_lag": {"over_0_1_s": 0.02, "over_0_5_s": 0.0}}
    ours = {"delivered_min": 1.0, "e2e_p95_ms": 500.0, "rss_growth": 0.01, "passed": True,
            "event_loop_lag": None}
    rows = {line.split()[0]: line.split()[1:] for line in soak.side_by_side(stock, ours).splitlines()[1:]}
    assert rows["delivered_min"] == ["0.5", "1", "2.00"]
    assert rows["e2e_p95_ms"] == ["8000", "500", "0.06"]
    assert rows["rss_growth"][-1] == "-"  # a ratio of two small signed growths means nothing
    assert rows["passed"] == ["False", "True"]


def test_lag_summary_counts_late_ticks_between_snapshots() -> None:
    before = {"0.1": 10.0, "0.5": 10.0, "+Inf": 10.0}
    after = {"0.1": 16.0, "0.5": 18.0, "+Inf": 20.0}  # 10 new ticks: 4 over 0.1 s, 2 of them over 0.5 s
    assert soak.lag_summary(before, after) == {"ticks": 10.0, "over_0_1_s": 0.4, "over_0_5_s": 0.2}
    assert soak.lag_summary(None, after) is None
    assert soak.lag_summary(after, after) is None


def test_expected_windows_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert soak.expected_windows(10.0, 4.0, 1.0) == 7
    assert soak.expected_windows(10.6, 4.0, 1.0) == 8  # 0.6 s after the last window: a final one
    assert soak.expected_windows(2.0, 4.0, 1.0) == 1
    assert soak.expected_windows(0.5, 4.0, 1.0) == 0
    p = argparse.ArgumentParser()
    soak.add_arguments(p)
    assert soak.run(p.parse_args(["--publishers", "0"])) == 2
    assert "need publishers" in capsys.readouterr().err


def test_the_monitor_log_goes_to_the_temp_folder_not_the_working_directory() -> None:
    import tempfile

    p = argparse.ArgumentParser()
    soak.add_arguments(p)
    log = p.parse_args([]).log
    assert log.is_absolute() and log.parent == Path(tempfile.gettempdir()), log
