"""Load and soak on loopback: WebRTC publishers into a real ``monitor`` process, many websocket
subscribers, for a while. Reported and checked:

- delivered: per stream, score messages received / windows expected from the audio sent;
- lost: messages missing from the per-stream ``seq`` of subscribers that keep up (must be 0);
- memory growth of the monitor process after warm-up (must stay under 10%);
- p95 end-to-end latency: from the capture of a window's last sample (``t_capture``, when its RTP
  frame reached the monitor) to the score's arrival at a subscriber (same machine, same clock).

CI runs the short version (4 publishers x 20 subscribers x 20 s). The full one (32 x 200 x 600 s):
``pytest -m slow tests/reliability/test_soak.py -s``; sizes can be changed with the environment
variables SAMOS_SOAK_PUBLISHERS, SAMOS_SOAK_SUBSCRIBERS and SAMOS_SOAK_SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import start_cli
from websockets.asyncio.client import connect

WINDOW, HOP = 1.0, 0.5
HERE = Path(__file__).resolve().parent


@dataclass
class Subscriber:
    """One websocket client's view: per-stream scores, seq gaps, reported drops, latencies."""

    scores: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last_seq: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    told_dropped: int = 0
    ended: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    end_reasons: dict[str, str] = field(default_factory=dict)

    def take(self, m: dict[str, Any], now: float) -> None:
        s = m.get("stream")
        self.told_dropped += m.get("dropped_messages", 0)
        if s is None:
            return
        if s in self.last_seq:
            self.gaps += max(0, m["seq"] - self.last_seq[s] - 1)
        self.last_seq[s] = m["seq"]
        if m["type"] == "score":
            self.scores[s] += 1
            self.latencies.append(now - m["t_capture"])
        elif m["type"] == "stream_end":
            self.ended.add(s)
            self.end_reasons[s] = f"{m['reason']} after {m['seconds']:.1f} s"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def expected_windows(seconds: float) -> int:
    """Windows the monitor makes of ``seconds`` of audio (regular hops; a shorter stream: one)."""
    return int((seconds - WINDOW) // HOP) + 1 if seconds >= WINDOW else 1


async def run_soak(
    model_path: Path, publishers: int, subscribers: int, seconds: float, log: Path
) -> dict[str, Any]:
    """Run one soak; ``log`` receives the monitor's stderr. Returns the figures (see module doc)."""
    proc, where = await start_cli(
        [
            *("--model", str(model_path), "--providers", "cpu", "--threads", "1"),
            *("--ws", "127.0.0.1:0", "--webrtc", "127.0.0.1:0", "--window", str(WINDOW), "--hop", str(HOP)),
        ],
        stderr=log,
    )
    subs = [Subscriber() for _ in range(subscribers)]
    stop = asyncio.Event()

    async def subscribe(sub: Subscriber) -> None:
        async with connect(where["ws"], max_queue=None, open_timeout=60) as ws:
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                sub.take(json.loads(raw), time.monotonic())

    readers = [asyncio.create_task(subscribe(s), name=f"soak-sub-{i}") for i, s in enumerate(subs)]
    rss: list[tuple[float, float]] = []
    pubs = None
    try:
        await asyncio.sleep(1.0)
        pubs = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "soak_publishers.py"),
            where["http"],
            str(publishers),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        assert pubs.stdout is not None
        line = (await asyncio.wait_for(pubs.stdout.readline(), 300)).decode()
        assert line.strip() == "ready", line
        t0 = time.monotonic()
        result_line = asyncio.create_task(pubs.stdout.readline(), name="soak-publishers")
        while not result_line.done():
            rss.append((time.monotonic() - t0, rss_mb(proc.pid)))
            await asyncio.wait({result_line}, timeout=1.0)
        sent = json.loads(result_line.result())["sent_seconds"]
        names = set(sent)
        deadline = time.monotonic() + 30
        while not all(names <= s.ended for s in subs) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # the readers record stream_end; polling their state is simplest
    finally:
        stop.set()
        await asyncio.gather(*readers, return_exceptions=True)
        if pubs is not None and pubs.returncode is None:
            pubs.kill()
            await pubs.wait()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
    short = {n: round(t, 1) for n, t in sent.items() if t < 0.98 * seconds}
    if short:  # the monitor ended streams early: say which and why instead of computing figures
        text = await asyncio.to_thread(log.read_text)
        raise AssertionError(
            f"{len(short)} of {publishers} streams ended early {short}; "
            f"monitor said {subs[0].end_reasons}; its log: {text[-3000:]}"
        )
    warm = [r for t, r in rss if t >= max(5.0, 0.25 * seconds)]
    base = warm[0]
    tail = warm[-max(1, len(warm) // 10) :]
    lat = sorted(x for s in subs for x in s.latencies)
    delivered = {n: min(s.scores.get(n, 0) for s in subs) / expected_windows(sent[n]) for n in sorted(names)}
    return {
        "publishers": publishers,
        "subscribers": subscribers,
        "seconds": seconds,
        "delivered_min": min(delivered.values()),
        "delivered_mean": statistics.fmean(delivered.values()),
        "lost_messages": sum(s.gaps for s in subs),
        "reported_dropped": sum(s.told_dropped for s in subs),
        "all_ended": all(names <= s.ended for s in subs),
        "rss_warm_mb": base,
        "rss_end_mb": statistics.fmean(tail),
        "rss_growth": statistics.fmean(tail) / base - 1.0,
        "rss_max_mb": max(r for _, r in rss),
        "latency_p50_ms": 1000 * lat[len(lat) // 2],
        "latency_p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
        "scores_received": len(lat),
    }


def check(report: dict[str, Any]) -> None:
    print("\nsoak:", json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()}))
    assert report["lost_messages"] == 0 and report["reported_dropped"] == 0
    assert report["all_ended"]
    assert report["delivered_min"] >= 0.95
    assert report["rss_growth"] < 0.10


@pytest.mark.timeout(240)
async def test_soak_short(model_path: Path, tmp_path: Path) -> None:
    check(await run_soak(model_path, 4, 20, 20.0, tmp_path / "monitor.log"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_soak_full(model_path: Path, tmp_path: Path) -> None:
    env = os.environ.get
    check(
        await run_soak(
            model_path,
            publishers=int(env("SAMOS_SOAK_PUBLISHERS", "32")),
            subscribers=int(env("SAMOS_SOAK_SUBSCRIBERS", "200")),
            seconds=float(env("SAMOS_SOAK_SECONDS", "600")),
            log=tmp_path / "monitor.log",
        )
    )
