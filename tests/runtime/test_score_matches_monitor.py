"""Offline and live agree: a file streamed through the monitor (``--file --no-realtime --log``) and
the same file scored by ``samos score`` get the same windows, statuses, MOS and file-level summary.

Both run as the user runs them (two subprocesses, their command lines). The file has real speech
(the bundled demo call) at 44.1 kHz, so both resample, and 5 s of dead air in the middle, so the speech
gate refuses some windows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.audio import resample

DEMO = Path(__file__).resolve().parents[2] / "samos" / "assets" / "demo_call_48k.flac"
RATE = 44_100


def test_samos_score_and_the_monitor_agree_window_by_window(tmp_path: Path, tiny_model: Path) -> None:
    demo, sr = sf.read(str(DEMO), dtype="float32")
    speech = resample(demo[: 12 * sr], sr, RATE)
    audio = np.concatenate([speech[: 6 * RATE], np.zeros(5 * RATE, np.float32), speech[6 * RATE :]])
    path = tmp_path / "call.flac"
    sf.write(path, audio, RATE)
    log, out = tmp_path / "live.jsonl", tmp_path / "offline.jsonl"
    common = ["--model", str(tiny_model), "--providers", "cpu"]
    live = subprocess.run(
        [
            sys.executable,
            "-m",
            "samos.monitor.cli",
            "--file",
            f"call={path}",
            "--no-realtime",
            "--no-ws",
            "--log",
            str(log),
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert live.returncode == 0, live.stderr
    offline = subprocess.run(
        [
            sys.executable,
            "-m",
            "samos.cli",
            "score",
            str(path),
            "--out",
            str(out),
            "--windows",
            "--quiet",
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert offline.returncode == 0, offline.stderr

    scores = [m for m in map(json.loads, log.read_text().splitlines()) if m["type"] == "score"]
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    windows = row["windows"]
    # same windows (4 s every 1 s, then one ending at the end), same statuses
    assert len(scores) == len(windows) >= 12
    spans_live = [x for w in scores for x in (w["t_start"], w["t_end"])]
    assert spans_live == pytest.approx([x for w in windows for x in (w["start_s"], w["end_s"])], abs=1e-3)
    statuses = [w["status"] for w in scores]
    assert statuses == [w["status"] for w in windows]
    assert "ok" in statuses and "silence" in statuses  # the gate did refuse the dead air
    # same MOS per window (null where not scored)
    for a, b in zip(scores, windows, strict=True):
        assert (a["mos"] is None) == (b["mos"] is None)
        if a["mos"] is not None:
            assert a["mos"] == pytest.approx(b["mos"], abs=0.01)
    # same file-level summary
    live_mos = [w["mos"] for w in scores if w["mos"] is not None]
    assert row["n_windows"] == len(scores) and row["scored_windows"] == len(live_mos)
    assert row["mos"] == pytest.approx(float(np.mean(live_mos)), abs=0.01)
    assert row["seconds"] == pytest.approx(len(audio) / RATE, abs=1e-3)
