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


async def _soak(model: Path, tmp: Path, publishers: int, subscribers: int, seconds: float) -> dict[str, Any]:
    return await soak.run_soak(
        publishers=publishers,
        subscribers=subscribers,
        seconds=seconds,
        window=WINDOW,
        hop=HOP,
        monitor_args=["--model", str(model), "--providers", "cpu", "--threads", "1"],
        log=tmp / "monitor.log",
        publisher_procs=max(1, publishers // 16),
    )


@pytest.mark.timeout(240)
async def test_soak_short(model_path: Path, tmp_path: Path) -> None:
    report = await _soak(model_path, tmp_path, 4, 20, 20.0)
    check(report)
    assert report["publishers"] == 4 and report["scores_received"] >= 20 * 4 * 30
    assert 0 < report["cpu_s_per_stream_s"] < 1.0
    lag = report["event_loop_lag"]
    assert lag is not None and lag["ticks"] > 40  # 20 s of 250 ms ticks


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_soak_full(model_path: Path, tmp_path: Path) -> None:
    env = os.environ.get
    check(
        await _soak(
            model_path,
            tmp_path,
            publishers=int(env("SAMOS_SOAK_PUBLISHERS", "32")),
            subscribers=int(env("SAMOS_SOAK_SUBSCRIBERS", "200")),
            seconds=float(env("SAMOS_SOAK_SECONDS", "600")),
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


def test_lag_summary_counts_late_ticks_between_snapshots() -> None:
    before = {"0.1": 10.0, "0.5": 10.0, "+Inf": 10.0}
    after = {"0.1": 16.0, "0.5": 18.0, "+Inf": 20.0}  # 10 new ticks: 4 over 0.1 s, 2 of them over 0.5 s
    assert soak.lag_summary(before, after) == {"ticks": 10.0, "over_0_1_s": 0.4, "over_0_5_s": 0.2}
    assert soak.lag_summary(None, after) is None
    assert soak.lag_summary(after, after) is None


def test_expected_windows_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert soak.expected_windows(10.0, 4.0, 1.0) == 7
    assert soak.expected_windows(2.0, 4.0, 1.0) == 1
    p = argparse.ArgumentParser()
    soak.add_arguments(p)
    assert soak.run(p.parse_args(["--publishers", "0"])) == 2
    assert "need publishers" in capsys.readouterr().err
