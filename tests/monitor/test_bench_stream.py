"""``samos bench stream`` end to end (in-process monitor, real-time file streams, websocket client)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from samos.bench import stream


def test_two_streams(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    stream.add_arguments(p)
    args = p.parse_args(
        [
            "--streams",
            "2",
            "--seconds",
            "3",
            "--window",
            "1",
            "--hop",
            "0.5",
            "--model",
            str(model_path),
            "--json",
        ]
    )
    assert stream.run(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["windows_expected"] == 2 * 5 == out["windows_delivered"]
    assert 0 < out["cpu_s_per_stream_s"] < 1
    assert 0 <= out["latency_ms_p50"] <= out["latency_ms_p95"] < 3000
    assert out["wall_s"] >= 2.9  # paced in real time


def test_expected_windows_matches_the_windower() -> None:
    audio = stream.synthetic_speech(10.0, 16_000)
    assert stream.expected_windows(audio, 16_000, 4.0, 1.0, 1.0) == 7
    assert stream.expected_windows(audio[:8000], 16_000, 4.0, 1.0, 1.0) == 0
