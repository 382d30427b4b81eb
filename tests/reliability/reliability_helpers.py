"""Helpers of the reliability suite: the tiny real ONNX model and signals of tests/monitor, a running
Monitor with its HTTP app on 127.0.0.1, websocket readers, sequence-gap counting, and starting the
real ``monitor`` CLI. (A uniquely named module: ``from conftest import`` is ambiguous when several
test folders are collected together.)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from samos.bench.soak import monitor_addresses

MONITOR_TESTS = Path(__file__).resolve().parents[1] / "monitor"
if str(MONITOR_TESTS) not in sys.path:  # webrtc_peers.py: real aiortc sender peers
    sys.path.insert(0, str(MONITOR_TESTS))


def _load_monitor_fixtures() -> Any:
    spec = importlib.util.spec_from_file_location("monitor_fixtures", MONITOR_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixtures = _load_monitor_fixtures()
make_level_model = fixtures.make_level_model
speech_like = fixtures.speech_like
ASOUNDRC = fixtures.ASOUNDRC
MONITOR_CLI = [sys.executable, "-m", "samos.monitor.cli"]


def small_config(**sections: Any) -> Any:
    """A MonitorConfig for in-process tests: 1 s windows every 0.5 s, websocket on a free port."""
    from dataclasses import replace

    from samos.monitor.config import HttpConfig, MonitorConfig, WebsocketConfig, WindowConfig

    cfg = MonitorConfig(
        window=WindowConfig(window_seconds=1.0, hop_seconds=0.5, min_final_seconds=0.5),
        ws=WebsocketConfig(host="127.0.0.1", port=0),
        http=HttpConfig(enabled=True, host="127.0.0.1", port=0),
    )
    return replace(cfg, **sections)


@contextlib.asynccontextmanager
async def running_monitor(cfg: Any, scorer: Any) -> AsyncIterator[tuple[Any, str]]:
    """A started Monitor (HTTP app included when enabled); yields (monitor, http base URL or "")."""
    from samos.monitor.app import Monitor

    monitor = Monitor(cfg, scorer)
    await monitor.start()
    try:
        base = ""
        if monitor.http_address is not None:
            host, port = monitor.http_address
            base = f"http://{host}:{port}"
        yield monitor, base
    finally:
        await monitor.stop()


def ws_url(monitor: Any, query: str = "") -> str:
    host, port = monitor.ws_address
    return f"ws://{host}:{port}/" + (f"?{query}" if query else "")


async def read_messages(
    ws: Any, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
) -> list[dict]:
    """Messages from an open websocket until ``until(messages)`` holds (TimeoutError after ``timeout``)."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not until(out):
        raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        out.append(json.loads(raw))
    return out


def seq_gaps(messages: list[dict[str, Any]]) -> int:
    """Messages missing from each stream's ``seq`` run (0 = nothing lost, nothing reordered)."""
    last: dict[str, int] = {}
    missing = 0
    for m in messages:
        s = m.get("stream")
        if s is None:
            continue
        if s in last:
            missing += max(0, m["seq"] - last[s] - 1)
            assert m["seq"] > last[s], f"stream {s}: seq went back from {last[s]} to {m['seq']}"
        last[s] = m["seq"]
    return missing


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def start_cli(
    args: list[str], env: dict[str, str] | None = None, stderr: Path | None = None
) -> tuple[asyncio.subprocess.Process, dict]:
    """Start ``monitor`` as a subprocess; returns it and the addresses from its start-up lines
    (``ws``: websocket URL, ``http``: base URL when --webrtc is given). ``stderr``: a file for its
    log (long runs: an undrained pipe would fill up and block the monitor)."""
    err_file = stderr.open("wb") if stderr is not None else None
    proc = await asyncio.create_subprocess_exec(
        *MONITOR_CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=err_file if err_file is not None else asyncio.subprocess.PIPE,
        env=env,
    )
    if err_file is not None:
        err_file.close()  # the child has its own descriptor
    assert proc.stdout is not None
    found = await monitor_addresses(proc.stdout, want_http="--webrtc" in args, timeout=60)
    if found is None:
        err = (await proc.stderr.read()).decode() if proc.stderr is not None else ""
        if stderr is not None:
            err = await asyncio.to_thread(stderr.read_text)
        raise AssertionError(f"monitor exited early: {err[-3000:]}")
    return proc, found
