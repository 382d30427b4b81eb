"""Faults the monitor survives: the sound card vanishes and comes back, the inference thread dies,
a websocket client stalls, the event loop is blocked."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf
from reliability_helpers import (
    ASOUNDRC,
    eventually,
    read_messages,
    running_monitor,
    seq_gaps,
    small_config,
    speech_like,
    ws_url,
)
from websockets.asyncio.client import connect

from samos.monitor.sources.file import FileSource

pytestmark = pytest.mark.timeout(180)

DEVICE_SCRIPT = r"""
import asyncio, faulthandler, json, os, sys, time
faulthandler.dump_traceback_later(100, exit=True)  # a hang shows where, in stderr
from samos.monitor.app import Monitor
from samos.monitor.config import MonitorConfig, WebsocketConfig, WindowConfig
from samos.monitor.sources.device import DeviceSource, ReopenPolicy
from samos.runtime.scorer import Scorer

home = os.environ["HOME"]
async def main():
    cfg = MonitorConfig(window=WindowConfig(window_seconds=1.0, hop_seconds=0.5, min_final_seconds=0.5),
                        ws=WebsocketConfig(enabled=False))
    monitor = Monitor(cfg, Scorer(sys.argv[1], providers=("cpu",), threads=1))
    msgs = []
    monitor.publisher.publish = lambda msg, text=None: msgs.append(msg)
    await monitor.start()
    src = DeviceSource.open("samos_test", queue_seconds=0.2,
                            reopen=ReopenPolicy(stall_seconds=1.0, initial_delay=0.1, max_delay=0.4))
    await monitor.add_source(src)
    t0 = time.monotonic()
    while sum(m["type"] == "score" for m in msgs) < 5 and time.monotonic() - t0 < 30:
        await asyncio.sleep(0.05)
    before = len(msgs)
    os.rename(f"{home}/.asoundrc", f"{home}/asoundrc.off")  # the device is gone from the system ...
    src._stream.abort()                                       # ... and its stream stops
    await asyncio.sleep(1.5)
    gone = sum(m["type"] == "score" for m in msgs[before:])
    os.rename(f"{home}/asoundrc.off", f"{home}/.asoundrc")   # plugged back in
    t0 = time.monotonic()
    while src.reopens < 1 and time.monotonic() - t0 < 20:
        await asyncio.sleep(0.05)
    n = len(msgs)
    while sum(m["type"] == "score" for m in msgs[n:]) < 5 and time.monotonic() - t0 < 30:
        await asyncio.sleep(0.05)
    after = sum(m["type"] == "score" for m in msgs[n:])
    lost = monitor.metrics.dropped_audio.labels("samos_test")._value.get()
    await monitor.stop()
    print(json.dumps({"reopens": src.reopens, "gone_scores": gone, "after": after, "lost_seconds": lost,
                      "types": [m["type"] for m in msgs], "seqs": [m["seq"] for m in msgs if m["stream"]],
                      "end": msgs[-1].get("reason")}))
asyncio.run(main())
"""


def test_sound_card_vanishes_and_comes_back(tmp_path: Path, model_path: Path) -> None:
    """Real PortAudio/ALSA: the capture stream stops and the device leaves the device list for
    1.5 s; the source reopens it with back-off and the same stream goes on."""
    rate = 48_000
    pcm = (speech_like(30.0, rate, 0.1) * 32767).astype("<i2")
    pcm.tofile(tmp_path / "in.raw")
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(raw=tmp_path / "in.raw", rate=rate))
    env = {**os.environ, "HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-c", DEVICE_SCRIPT, str(model_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["reopens"] == 1 and out["after"] >= 5
    assert "reopening" in r.stderr and "reopened after" in r.stderr
    assert out["types"].count("stream_start") == 1 and out["types"].count("stream_end") == 1
    assert out["end"] == "stopped", r.stderr[-3000:]  # the stream ended only when the monitor stopped
    assert out["seqs"] == list(range(len(out["seqs"])))  # one stream, state kept, nothing skipped
    assert out["lost_seconds"] >= 1.0  # the silent gap is accounted as dropped audio


class DiesOnce:
    """The real scorer, but the inference thread dies (SystemExit) during its ``die_on``-th call."""

    def __init__(self, scorer: Any, die_on: int) -> None:
        self.scorer, self.die_on, self.calls = scorer, die_on, 0
        self.info, self.path, self.provider = scorer.info, scorer.path, scorer.provider

    def score(self, wave16: np.ndarray, wave48: np.ndarray) -> Any:
        self.calls += 1
        if self.calls == self.die_on:
            raise SystemExit("simulated crash of the inference thread")
        return self.scorer.score(wave16, wave48)


async def test_inference_worker_dies_and_is_restarted(tmp_path: Path, scorer: Any) -> None:
    sf.write(tmp_path / "a.wav", speech_like(2.0, 16_000, 0.05), 16_000)
    sf.write(tmp_path / "b.wav", speech_like(2.0, 16_000, 0.02, seed=3), 16_000)
    dying = DiesOnce(scorer, die_on=6)
    async with running_monitor(small_config(), dying) as (monitor, base):
        async with connect(ws_url(monitor)) as ws:
            for name in ("a", "b"):
                await monitor.add_source(
                    await FileSource.open(str(tmp_path / f"{name}.wav"), name, loop=True)
                )
            msgs = await read_messages(
                ws, lambda ms: sum(m["type"] == "score" and m["status"] == "ok" for m in ms) >= 20, timeout=60
            )
            assert monitor.worker.restarts == 1 and monitor.worker.alive
            errors = [m for m in msgs if m["type"] == "score" and m["status"] == "error"]
            assert 1 <= len(errors) <= monitor.cfg.worker.max_batch
            assert all("inference worker died" in m["diagnostics"]["error"] for m in errors)
            last_error = max(msgs.index(m) for m in errors)
            for name in ("a", "b"):
                after = [m for m in msgs[last_error:] if m["stream"] == name and m["type"] == "score"]
                assert after and after[-1]["status"] == "ok" and after[-1]["rolling_mos"] is not None
            assert seq_gaps(msgs) == 0 and not any(m["type"] == "stream_end" for m in msgs)
            assert set(monitor.streams) == {"a", "b"}
        async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as r:
            assert "samos_worker_restarts_total 1.0" in await r.text()


async def test_worker_restart_backs_off(scorer: Any) -> None:
    from samos.monitor.worker import InferenceWorker, WorkerCrashed

    class AlwaysDies:
        def score(self, wave16: np.ndarray, wave48: np.ndarray) -> Any:
            raise SystemExit("dead")

    worker = InferenceWorker(AlwaysDies(), restart_delay=0.05, max_restart_delay=0.2)
    worker.start()
    try:
        t0 = time.monotonic()
        for _ in range(5):
            fut = worker.submit(np.zeros(16_000, np.float32), np.zeros(48_000, np.float32))
            with pytest.raises(WorkerCrashed, match="SystemExit"):
                await asyncio.wait_for(fut, 5)
        await eventually(lambda: worker.restarts >= 5)
        # 0.05 + 0.1 + 0.2 + 0.2 seconds of back-off at least before the 5th restart
        assert time.monotonic() - t0 >= 0.5
    finally:
        await worker.stop()
    assert not worker.alive


async def test_stalled_websocket_client_is_bounded_and_told(scorer: Any) -> None:
    from dataclasses import replace

    cfg = small_config()
    cfg = replace(cfg, ws=replace(cfg.ws, client_queue=32))
    async with running_monitor(cfg, scorer) as (monitor, _):
        host, port = monitor.ws_address
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        stalled = await connect(ws_url(monitor), sock=sock, max_queue=2)
        async with connect(ws_url(monitor), max_queue=None) as good:
            await read_messages(good, lambda ms: len(ms) >= 1)
            await asyncio.sleep(0.2)
            from samos.monitor.schema import StreamMessages

            stream, pad = StreamMessages("synthetic"), "x" * 3000
            n = 3000  # 9 MB: more than the kernel's socket buffers hold for the stalled client
            received: list[dict[str, Any]] = []

            async def reader() -> None:
                received.extend(
                    await read_messages(good, lambda ms: bool(ms) and ms[-1]["seq"] == n - 1, timeout=150)
                )

            task = asyncio.create_task(reader())
            for i in range(n):
                msg = stream._base("score")
                msg["pad"] = pad
                monitor.publisher.publish(msg)
                if i % 10 == 9:
                    await asyncio.sleep(0.01)  # ~1,000 messages/s: a reader that keeps up loses none
            await task
            assert len(received) == n and seq_gaps(received) == 0
            assert not any("dropped_messages" in m for m in received)
            (slow,) = [c for c in monitor.publisher.clients if c.dropped_total]
            assert len(slow.queue) <= 32  # bounded: the stalled client holds at most its queue
            counted = monitor.metrics.ws_dropped._value.get()
            assert counted == slow.dropped_total > 0
            # the client resumes reading: it is told how many messages it lost, exactly
            told, seen = 0, 0
            while True:
                try:
                    m = json.loads(await asyncio.wait_for(stalled.recv(), 5))
                except TimeoutError:
                    break
                told += m.get("dropped_messages", 0)
                seen += m["type"] == "score"
                if m["type"] == "score" and m["seq"] == n - 1:
                    break
            assert told == slow.dropped_total and seen + told == n
        await stalled.close()
        print(f"\nstalled client: {told} of {n} messages dropped and reported, queue bounded at 32")


async def test_event_loop_lag_is_measured_and_exported(scorer: Any) -> None:
    async with running_monitor(small_config(), scorer) as (_, base), aiohttp.ClientSession() as http:
        await asyncio.sleep(0.6)
        time.sleep(0.7)  # noqa: ASYNC251 - the fault under test: something blocks the loop
        await asyncio.sleep(0.6)
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("samos_event_loop_lag"))
    assert "samos_event_loop_lag_seconds" in lines
    assert float(lines['samos_event_loop_lag_bucket{le="0.25"}']) < float(lines["samos_event_loop_lag_count"])
    assert float(lines['samos_event_loop_lag_bucket{le="1.0"}']) == float(lines["samos_event_loop_lag_count"])


async def test_webrtc_backlog_in_aiortc_is_bounded() -> None:
    """An event loop that fell behind finds 6 s of decoded frames queued in aiortc's (unbounded)
    track queue: the source keeps ``buffer_seconds`` (1 s) of the newest and counts the rest."""
    import fractions

    import av
    from aiortc import RTCPeerConnection
    from aiortc.rtcrtpreceiver import RemoteStreamTrack

    from samos.monitor.sources.webrtc import WebRTCOptions, WebRTCSource

    pc = RTCPeerConnection()
    source = WebRTCSource(pc, "backlog", WebRTCOptions(buffer_seconds=1.0, inactivity_timeout=0.5))
    track = RemoteStreamTrack("audio")
    for i in range(300):  # 6 s of 20 ms stereo s16 frames, sample values = frame index
        frame = av.AudioFrame.from_ndarray(np.full((1, 1920), i, np.int16), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48_000, i * 960, fractions.Fraction(1, 48_000)
        track._queue.put_nowait(frame)
    source._attach(track, None)  # type: ignore[arg-type]
    chunks = []
    try:
        while True:
            chunks.append(await asyncio.wait_for(source.recv(), 5))
    except Exception as e:  # noqa: BLE001 - SourceEnded after the inactivity timeout
        assert type(e).__name__ == "SourceEnded", e
    finally:
        await source.close()
    assert sum(c.frames for c in chunks) == 50 * 960 and source.stats.overflow_samples == 250 * 960
    assert chunks[0].dropped == 250 * 960 and sum(c.dropped for c in chunks[1:]) == 0
    assert round(float(chunks[0].samples[0]) * 32768) == 250  # the newest second was kept
    assert source.stats.lost_samples == 0
