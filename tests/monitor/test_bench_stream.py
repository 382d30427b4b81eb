"""``samos bench stream`` end to end (in-process monitor, real-time file streams, websocket client)."""

from __future__ import annotations

import argparse
import importlib.util
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
    # on the monitor's own loop (configs/monitor.yaml: event_loop auto -> uvloop where installed)
    assert out["event_loop"] == ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")


def test_expected_windows_matches_the_windower() -> None:
    audio = stream.synthetic_speech(10.0, 16_000)
    assert stream.expected_windows(audio, 16_000, 4.0, 1.0, 1.0) == 7
    assert stream.expected_windows(audio[:8000], 16_000, 4.0, 1.0, 1.0) == 0


def test_compare_needs_a_pair(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    stream.add_arguments(p)
    args = p.parse_args(["--streams", "1", "--seconds", "2", "--model", str(model_path), "--compare"])
    assert stream.run(args) == 2
    assert "needs a model with an incremental pair" in capsys.readouterr().out


def test_compare_incremental_and_whole_window_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import soundfile as sf

    from samos.audio import load_audio

    audio, rate = load_audio(str(Path(stream.__file__).parents[1] / "assets" / "demo_call_48k.flac"))
    speech = tmp_path / "speech.wav"
    sf.write(speech, audio[int(20 * rate) : int(26 * rate)], rate)
    p = argparse.ArgumentParser()
    stream.add_arguments(p)
    args = p.parse_args(
        ["--streams", "2", "--file", str(speech), "--model", "default", "--compare", "--json"]
    )
    assert stream.run(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    inc, whole = out["incremental"], out["whole_window"]
    assert (inc["path"], whole["path"]) == ("incremental", "whole-window")
    assert inc["windows_expected"] == whole["windows_expected"] == 2 * 3
    assert inc["windows_delivered"] == whole["windows_delivered"] == 6
    assert out["whole_over_incremental"]["cpu_s_per_stream_s"] > 0
    # the default ships int8 frames and head: its float32 pair runs beside it
    inc32 = out["incremental_fp32"]
    assert (inc["int8"], inc32["int8"], whole["int8"]) == (True, False, False)
    assert (inc["int8_graphs"], inc32["int8_graphs"], whole["int8_graphs"]) == (["frames", "head"], [], [])
    assert inc32["path"] == "incremental" and inc32["windows_delivered"] == 6
    assert out["fp32_over_int8"]["cpu_s_per_stream_s"] > 0
    table = stream.compare_table(out)
    assert "| cpu_s_per_stream_s |" in table and "| windows_delivered | 6 | 6 | 6 |" in table
    assert "incremental (int8 frames+head) | incremental (fp32) | whole-window" in table
