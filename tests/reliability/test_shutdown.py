"""Nothing lost: a running ``monitor`` (a file stream and a WebRTC publisher, JSONL log) is sent
SIGTERM: queued windows are scored, every subscriber gets each stream's ``stream_end``, the peer
connection is closed and the JSONL log holds exactly what was published. After SIGKILL the log
still holds every record a subscriber saw, each line complete (flushed per record)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import soundfile as sf
from reliability_helpers import eventually, read_messages, seq_gaps, speech_like, start_cli
from webrtc_peers import ArrayTrack, publish, speech_clip
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.timeout(180)


def cli_args(tmp_path: Path, model_path: Path) -> list[str]:
    sf.write(tmp_path / "talk.wav", speech_like(3.0, 16_000, 0.05), 16_000)
    return [
        *("--model", str(model_path), "--providers", "cpu", "--threads", "1"),
        *("--file", f"talk={tmp_path / 'talk.wav'}", "--loop"),
        *("--ws", "127.0.0.1:0", "--webrtc", "127.0.0.1:0", "--log", str(tmp_path / "log.jsonl")),
        *("--window", "1", "--hop", "0.5"),
    ]


def records(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines]  # a torn last line would fail here


async def test_sigterm_drains_closes_peers_and_loses_nothing(tmp_path: Path, model_path: Path) -> None:
    proc, where = await start_cli(cli_args(tmp_path, model_path))
    try:
        async with aiohttp.ClientSession() as http, connect(where["ws"]) as ws:
            pc, answer = await publish(http, where["http"], ArrayTrack(speech_clip(60.0)), name="caller")
            msgs = await read_messages(
                ws, lambda ms: {m["stream"] for m in ms if m["type"] == "score"} >= {"talk", "caller"}, 60
            )
            msgs += await read_messages(ws, lambda ms: sum(m["type"] == "score" for m in ms) >= 4)
            proc.send_signal(signal.SIGTERM)
            try:
                while True:
                    msgs.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            except ConnectionClosed:
                pass
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            assert await eventually(lambda: pc.connectionState in ("closed", "failed"), 15)
            await pc.close()
        ends = {m["stream"]: m for m in msgs if m["type"] == "stream_end"}
        assert set(ends) == {"talk", answer["name"]} and all(e["reason"] == "stopped" for e in ends.values())
        assert seq_gaps(msgs) == 0
        logged_types = ("score", "alert", "stream_summary")
        published = {(m["stream"], m["seq"]) for m in msgs if m["type"] in logged_types}
        logged = {(r["stream"], r["seq"]) for r in records(tmp_path / "log.jsonl")}
        assert logged >= published  # every message a subscriber saw is on disk ...
        first_seen = min(m["seq"] for m in msgs if m["type"] == "score" and m["stream"] == "talk")
        assert {
            k for k in logged if k[0] != "talk" or k[1] >= first_seen
        } == published  # ... and nothing else
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigkill_leaves_a_complete_log(tmp_path: Path, model_path: Path) -> None:
    proc, where = await start_cli(cli_args(tmp_path, model_path))
    try:
        async with connect(where["ws"]) as ws:
            msgs = await read_messages(ws, lambda ms: sum(m["type"] == "score" for m in ms) >= 6, 60)
            proc.kill()
            await proc.wait()
        seen = {(m["stream"], m["seq"]) for m in msgs if m["type"] == "score"}
        logged = records(tmp_path / "log.jsonl")
        assert seen <= {(r["stream"], r["seq"]) for r in logged}
        assert all(r["type"] in ("score", "alert", "stream_summary") for r in logged)
        assert all(r["schema"] == "samos.monitor/1" for r in logged)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
