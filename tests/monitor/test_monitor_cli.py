"""The whole monitor as a subprocess: files, a sound card (ALSA file plugin), signals, errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from monitor_helpers import speech_like
from websockets.asyncio.client import connect

from samos.monitor.config import AlertConfig

MONITOR = [sys.executable, "-m", "samos.monitor.cli"]


async def start(args: list[str], env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, str]:
    """Start the monitor; returns the process and its websocket URL (from its start-up lines)."""
    proc = await asyncio.create_subprocess_exec(
        *MONITOR, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, "monitor exited: " + (await proc.stderr.read()).decode()[-2000:]  # type: ignore[union-attr]
        if m := re.search(r"websocket (ws://\S+)", line):
            return proc, m.group(1)


async def scores_then_stop(proc: asyncio.subprocess.Process, url: str, n: int) -> list[dict[str, Any]]:
    """Read until ``n`` score messages, SIGTERM the monitor, read on until the stream_end."""
    msgs: list[dict[str, Any]] = []
    async with connect(url) as ws:
        while sum(m["type"] == "score" for m in msgs) < n:
            msgs.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        proc.send_signal(signal.SIGTERM)
        while msgs[-1]["type"] != "stream_end":
            msgs.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    return msgs


async def test_file_stream_to_websocket_and_sigterm(tmp_path: Path, model_path: Path) -> None:
    sf.write(tmp_path / "call.wav", speech_like(3.0, 44_100, 0.05), 44_100)
    proc, url = await start(
        [
            "--model",
            str(model_path),
            "--file",
            f"desk={tmp_path / 'call.wav'}",
            "--no-realtime",
            "--loop",
            "--ws",
            "127.0.0.1:0",
            "--providers",
            "cpu",
        ]
    )
    msgs = await scores_then_stop(proc, url, 5)
    scores = [m for m in msgs if m["type"] == "score" and m["status"] == "ok"]
    assert scores and all(isinstance(s["mos"], float) and isinstance(s["rolling_mos"], float) for s in scores)
    assert {m["stream"] for m in msgs if m["stream"]} == {"desk"}
    assert msgs[-1]["reason"] == "stopped"


async def test_sound_card_stream(alsa_home: tuple[Path, np.ndarray], model_path: Path) -> None:
    env = {**os.environ, "HOME": str(alsa_home[0])}
    proc, url = await start(
        [
            "--model",
            str(model_path),
            "--device",
            "samos_test",
            "--ws",
            "127.0.0.1:0",
            "--window",
            "1",
            "--hop",
            "0.5",
            "--providers",
            "cpu",
        ],
        env,
    )
    msgs = await scores_then_stop(proc, url, 2)
    start_msg = next(m for m in msgs if m["type"] == "stream_start")
    assert (
        start_msg["kind"] == "device" and start_msg["rate"] == 48_000 and start_msg["stream"] == "samos_test"
    )
    assert all(m["diagnostics"]["rate"] == 48_000 for m in msgs if m["type"] == "score")


@pytest.mark.parametrize("event_loop", ["auto", "asyncio"])
def test_runs_to_the_end_and_logs_every_window(tmp_path: Path, model_path: Path, event_loop: str) -> None:
    sf.write(tmp_path / "a.wav", speech_like(6.0, 16_000), 16_000)
    log = tmp_path / "scores.jsonl"
    r = subprocess.run(
        [
            *MONITOR,
            "--model",
            str(model_path),
            "--file",
            str(tmp_path / "a.wav"),
            "--no-realtime",
            "--no-ws",
            "--log",
            str(log),
            "--providers",
            "cpu",
            "--event-loop",
            event_loop,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    records = [json.loads(x) for x in log.read_text().splitlines()]
    windows = [r for r in records if r["type"] == "score"]
    assert [w["window"] for w in windows] == [0, 1, 2]  # 4 s windows at 0, 1, 2 s of 6 s
    assert [r["type"] for r in records] == ["score"] * 3 + ["stream_summary"]
    assert records[-1]["windows"] == 3 and records[-1]["duration_seconds"] == 6.0
    assert all(w["status"] == "ok" and w["mos"] is not None for w in windows)


def test_piped_output_has_the_banner_and_per_stream_lines_with_the_mos(
    tmp_path: Path, model_path: Path
) -> None:
    sf.write(tmp_path / "a.wav", speech_like(6.0, 16_000), 16_000)
    args = [*MONITOR, "--model", str(model_path), "--file", f"call={tmp_path / 'a.wav'}", "--no-realtime"]
    r = subprocess.run([*args, "--ws", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", "the default path (auto providers) prints no warnings or notes"
    out = r.stdout.splitlines()
    assert re.fullmatch(r"monitor: model \S+ version \S+ on cpu \(auto\)", out[0]), out[0]
    assert any(re.fullmatch(r"monitor: websocket ws://127\.0\.0\.1:\d+/", x) for x in out)
    assert any("metrics off" in x for x in out)
    assert any(f"alert below MOS {AlertConfig().threshold:g}" in x for x in out)
    assert "monitor: stream call (file, 16000 Hz)" in out
    status = [x for x in out if x.startswith("monitor: call  level")]
    assert status, r.stdout
    assert re.search(r"MOS \d\.\d\d  rolling \d\.\d\d  ended  3 windows$", status[-1]), status[-1]
    assert "\x1b" not in r.stdout and "\r" not in r.stdout, "piped: plain lines"
    quiet = subprocess.run([*args, "--no-ws", "--quiet"], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and "stream call" in quiet.stdout
    assert "monitor: call  level" not in quiet.stdout


def test_terminal_output_redraws_the_stream_lines_in_place(tmp_path: Path, model_path: Path) -> None:
    import pty

    sf.write(tmp_path / "a.wav", speech_like(6.0, 16_000), 16_000)
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*MONITOR, "--model", str(model_path), "--file", f"call={tmp_path / 'a.wav'}", "--no-ws"],
            stdout=secondary, stderr=subprocess.PIPE, text=False,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                data = os.read(primary, 4096)
            except OSError:  # the terminal closed: the monitor exited
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        os.close(primary)
    out = b"".join(chunks).decode()
    assert "monitor: model " in out and "monitor: stream call (file, 16000 Hz)" in out
    assert "\x1b[2Kmonitor: call  level" in out, out  # each line cleared and rewritten
    assert "\x1b[1F" in out, "the cursor goes back up over the stream's line"
    assert re.search(r"MOS \d\.\d\d  rolling \d\.\d\d  ended  3 windows", out), out


def test_clear_errors(tmp_path: Path, model_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MONITOR, *args], capture_output=True, text=True, timeout=60)

    r = run("--model", str(model_path), "--file", str(tmp_path / "missing.wav"), "--no-ws")
    assert r.returncode == 2 and "missing.wav: no such file" in r.stderr and "Traceback" not in r.stderr
    r = run("--no-ws")
    assert r.returncode == 2 and "at least one source" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("ws:\n  prot: 1\n")
    r = run("--config", str(bad), "--file", "x.wav")
    assert r.returncode == 2 and "ws.prot" in r.stderr
    r = run("--model", str(tmp_path / "none.onnx"), "--file", "x.wav")
    assert r.returncode == 2 and "none.onnx" in r.stderr and "Traceback" not in r.stderr
    no_uvloop = (
        "import sys; sys.modules['uvloop'] = None\n"
        "from samos.monitor.cli import main\n"
        f"sys.exit(main(['--event-loop', 'uvloop', '--model', {str(model_path)!r}, '--file', 'x.wav']))"
    )
    r = subprocess.run([sys.executable, "-c", no_uvloop], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "uvloop is not installed" in r.stderr and "Traceback" not in r.stderr


def test_samos_dispatcher_and_list_devices(alsa_home: tuple[Path, np.ndarray]) -> None:
    env = {**os.environ, "HOME": str(alsa_home[0])}
    r = subprocess.run(
        [sys.executable, "-m", "samos.cli", "monitor", "--list-devices"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 0 and "samos_test" in r.stdout


def test_torch_free(tmp_path: Path, model_path: Path) -> None:
    """The monitor runs in a process where ``import torch`` fails."""
    sf.write(tmp_path / "a.wav", speech_like(4.5, 16_000), 16_000)
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchaudio'] = None\n"
        "from samos.monitor.cli import main\n"
        f"rc = main(['--model', {str(model_path)!r}, '--file', {str(tmp_path / 'a.wav')!r}, '--no-realtime',"
        " '--no-ws', '--providers', 'cpu'])\n"
        "import samos.bench.stream, samos.monitor.sources.device\n"
        "assert 'torch' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
