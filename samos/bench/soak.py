"""``samos bench soak``: the monitor under load for a while, on loopback, with real peers and clients.

A real ``monitor`` process (``--webrtc``, ``--ws``, the model and window/hop you give it, by default
those of configs/monitor.yaml) receives N real aiortc publishers (``samos.bench.webrtc_load``:
pre-encoded Opus over ICE/DTLS/SRTP, paced in real time, in ``--publisher-procs`` processes) while
M websocket subscribers (this process) read every stream. ``--ingest`` chooses the publishers:

- ``webrtc`` (default): as above, through the monitor's ``POST /offer``;
- ``rtp``: plain RTP over UDP (``samos.bench.rtp_load``: pre-encoded Opus, or PCMU with
  ``--codec pcmu``, 20 ms packets), one ``--rtp pub-I=127.0.0.1:PORT,codec=..,idle=2`` per publisher
  on the monitor's command line (free ports chosen here); a stream ends 2 s after its last packet;
- ``twilio`` / ``pcm``: telephony websockets (``samos.bench.telephony_load``): Twilio Media Streams
  JSON to ``/twilio``, or 16 kHz L16 frames to ``/pcm``, one message per 20 ms.

The monitor's HTTP server (``--webrtc``) runs in every case: ``/metrics`` and the websocket ingest
are on it. The monitor runs with ``--quiet`` (no status lines, as in the soaks before they existed)
and its stdout is read to the end all the same: a child's pipe that is not read fills up and blocks
the child (docs/RELIABILITY.md, the 32 x 600 s RTP run). Measured:

- ``delivered_min`` / ``delivered_mean``: per stream, the score messages the slowest subscriber
  received divided by the windows expected from the audio its publisher sent;
- ``delivered_max``: the same for the most a subscriber received of a stream: above 1.0, the monitor
  made more audio of a stream than was sent (duplicated or reordered audio makes a stream longer);
- ``lost_messages``: messages missing from the per-stream ``seq`` of the subscribers, plus those the
  server told them it dropped (``dropped_messages``); a subscriber that keeps up must lose none;
- ``rss_growth``: the monitor's resident memory (VmRSS, sampled every second) from the end of the
  warm-up (25% of the run, at least 5 s) to the mean of the last 10%;
- ``e2e_p50_ms`` / ``e2e_p95_ms``: end to end, from when the publisher sent a window's last packet to
  the score's arrival at the first subscriber (same machine, same monotonic clock). It includes what
  the monitor cannot see itself: packets waiting in the kernel's receive queues. It is an upper
  bound: the stream clock starts at the first packet received, so packets lost while DTLS comes up
  (typically 2-4, 20 ms each) count as delay;
- ``latency_p50_ms`` / ``latency_p95_ms``: the monitor's own part, from ``t_capture`` (when a window's
  last frame reached the monitor's code) to the score's arrival, over all subscribers;
- ``cpu_s_per_stream_s``: the monitor's CPU time per second of audio it received;
- ``cpu_by_thread``: the same, per thread of the monitor: ``main`` (the event loop), the threads it
  names (``samos-decoder``: WebRTC audio decoding; ``samos-inference``: the model), and ``other``
  (the rest of the process); threads are read once a second, so one that ends before the run does
  still counts under its name;
- ``event_loop_lag``: while the publishers streamed, the fractions of the monitor's 250 ms
  event-loop ticks that were more than 0.1 s and 0.5 s late (from its ``/metrics``); aioice's ICE
  consent checks give up after 0.5 s.

``--compare`` runs the same soak twice, first with the monitor's ingest as stock asyncio and aiortc
give it (``--event-loop asyncio --webrtc-handoff aiortc``), then as samos runs it (uvloop, batched
hand-off), and prints both side by side with their ratios.

``passed`` is true when every window was delivered (``delivered_min >= 0.95``: the last window of a
stream may be cut by teardown) and none more (``delivered_max <= 1.0``), nothing was lost, every
stream ended with its ``stream_end``, and memory grew less than 10%. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samos.audio import SSL_RATE
from samos.bench.procstat import ThreadCpu, by_thread, cpu_seconds
from samos.monitor.window import Windower

MONITOR = [sys.executable, "-m", "samos.monitor.cli"]
LOADER = [sys.executable, "-m", "samos.bench.webrtc_load"]
RTP_LOADER = [sys.executable, "-m", "samos.bench.rtp_load"]
TELEPHONY_LOADER = [sys.executable, "-m", "samos.bench.telephony_load"]
INGESTS = ("webrtc", "rtp", "twilio", "pcm")
RTP_IDLE_S = 2.0
"""``--ingest rtp``: a stream ends (``stream_end``) this long after its last packet."""
DELIVERED_MIN = 0.95
RSS_GROWTH_MAX = 0.10


class SoakError(RuntimeError):
    """The soak could not run (the monitor or a publisher process failed), with what it said."""


@dataclass
class Subscriber:
    """One websocket client's view: per-stream scores and seq gaps, reported drops, latencies."""

    scores: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last_seq: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    told_dropped: int = 0
    ended: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    record_ends: bool = False
    """Keep ``(stream, t_end, arrival)`` of every score in ``ends`` (one subscriber is enough)."""
    ends: list[tuple[str, float, float]] = field(default_factory=list)

    def take(self, m: dict[str, Any], now: float) -> None:
        self.told_dropped += m.get("dropped_messages", 0)
        s = m.get("stream")
        if s is None:
            return
        if s in self.last_seq:
            self.gaps += max(0, m["seq"] - self.last_seq[s] - 1)
        self.last_seq[s] = m["seq"]
        if m["type"] == "score":
            self.scores[s] += 1
            self.latencies.append(now - m["t_capture"])
            if self.record_ends:
                self.ends.append((s, m["t_end"], now))
        elif m["type"] == "stream_end":
            self.ended[s] = f"{m.get('reason')} after {m.get('seconds', 0.0):.1f} s"


def expected_windows(seconds: float, window: float, hop: float, min_final: float = 1.0) -> int:
    """Windows the monitor's ``Windower`` makes of ``seconds`` of audio (``min_final`` capped at the
    window, as the monitor's command line does)."""
    return Windower(window, hop, min(min_final, window)).count(round(seconds * SSL_RATE))


async def lag_buckets(base_url: str) -> dict[str, float] | None:
    """Cumulative buckets of the monitor's event-loop lag histogram (``samos_event_loop_lag``, one
    sample per 250 ms tick) from its own ``/metrics``: ``{le: count}``; None when unreadable or
    not answered within 15 s."""
    import aiohttp

    try:  # a bounded wait: a /metrics that does not answer must not cost the soak's figures
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(f"{base_url}/metrics") as resp:
            text = await resp.text()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("samos_event_loop_lag_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
    return buckets if {"0.1", "0.5", "+Inf"} <= set(buckets) else None


def lag_summary(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float] | None:
    """Ticks between two bucket snapshots and the fractions more than 0.1 s and 0.5 s late."""
    if before is None or after is None:
        return None
    n = {le: after[le] - before.get(le, 0.0) for le in ("0.1", "0.5", "+Inf")}
    if n["+Inf"] <= 0:
        return None
    return {
        "ticks": n["+Inf"],
        "over_0_1_s": round(1 - n["0.1"] / n["+Inf"], 5),
        "over_0_5_s": round(1 - n["0.5"] / n["+Inf"], 5),
    }


def percentile_ms(xs: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of sorted seconds ``xs``, in ms; None when empty."""
    return round(1000 * xs[int(q * (len(xs) - 1))], 1) if xs else None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SoakError(f"no VmRSS for process {pid}")


async def start_monitor(args: list[str], log: Path) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """Start ``monitor`` with ``args``; its log goes to ``log``. Returns it and its ws/http URLs."""
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *MONITOR, *args, stdout=asyncio.subprocess.PIPE, stderr=err
        )
    assert proc.stdout is not None
    found = await monitor_addresses(proc.stdout, want_http=True)
    if found is None:
        await proc.wait()
        said = await asyncio.to_thread(log.read_text)
        raise SoakError(f"the monitor exited ({proc.returncode}): {said[-2000:]}")
    return proc, found


async def discard(stream: asyncio.StreamReader) -> None:
    """Read ``stream`` to its end, keeping nothing: a child's pipe that nobody reads fills up (64 KiB,
    plus the 128 KiB asyncio buffers) and then blocks the child on its next write."""
    while await stream.read(1 << 16):
        pass


async def monitor_addresses(
    stdout: asyncio.StreamReader, want_http: bool, timeout: float = 120.0
) -> dict[str, str] | None:
    """The URLs a starting ``monitor`` prints: ``ws`` (websocket) and, with ``want_http``, ``http``
    (base URL of the publish page); None when its output ends first (it exited)."""
    found: dict[str, str] = {}
    while "ws" not in found or (want_http and "http" not in found):
        line = (await asyncio.wait_for(stdout.readline(), timeout)).decode()
        if not line:
            return None
        if m := re.search(r"websocket (ws://\S+)", line):
            found["ws"] = m.group(1)
        if m := re.search(r"publish page (http://\S+?)/ ", line):
            found["http"] = m.group(1)
    return found


async def subscribe(url: str, sub: Subscriber, stop: asyncio.Event) -> None:
    """One websocket client reading every message into ``sub`` until ``stop`` is set. No timer per
    message: with 200 clients the load generator must stay cheaper than what it loads."""
    from websockets.asyncio.client import connect

    async def read(ws: Any) -> None:
        async for raw in ws:
            sub.take(json.loads(raw), time.monotonic())

    async with connect(url, max_queue=None, open_timeout=60, compression=None) as ws:
        reader = asyncio.ensure_future(read(ws))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (reader, stopped):
                t.cancel()
            await asyncio.gather(stopped, return_exceptions=True)
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]


def free_udp_ports(n: int) -> list[int]:
    """``n`` UDP ports on 127.0.0.1 that are free now (bound to port 0 together, then released)."""
    import socket

    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def rtp_specs(ports: list[int], codec: str) -> list[str]:
    """The monitor's ``--rtp`` arguments for publishers ``pub-0``.. on ``ports``."""
    return [
        arg
        for i, port in enumerate(ports)
        for arg in ("--rtp", f"pub-{i}=127.0.0.1:{port},codec={codec},idle={RTP_IDLE_S:g}")
    ]


async def start_publishers(
    base: str,
    n: int,
    procs: int,
    seconds: float,
    token: str | None,
    *,
    rtp_ports: list[int] | None = None,
    codec: str = "opus",
    ingest: str = "webrtc",
) -> list[asyncio.subprocess.Process]:
    """``n`` publishers in ``procs`` processes; returns once all of them are connected (WebRTC,
    telephony websockets: ``ingest``) or ready to send (RTP to ``rtp_ports``, one per publisher, in
    ``codec``)."""
    out = []
    sizes = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    first = 0
    for size in (s for s in sizes if s):
        if rtp_ports is not None:
            ports = ",".join(str(p) for p in rtp_ports[first : first + size])
            cmd = [*RTP_LOADER, ports, str(seconds), "--first", str(first), "--codec", codec]
        else:
            loader = [*LOADER, base] if ingest == "webrtc" else [*TELEPHONY_LOADER, base, ingest]
            cmd = [*loader, str(size), str(seconds), "--first", str(first)]
            if token:
                cmd += ["--token", token]
        p = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out.append(p)
        first += size
    for p in out:
        assert p.stdout is not None and p.stderr is not None
        line = (await asyncio.wait_for(p.stdout.readline(), 60 + 5 * n)).decode().strip()
        if line != "ready":
            raise SoakError(f"a publisher process failed: {line} {(await p.stderr.read()).decode()[-2000:]}")
    return out


async def run_soak(
    *,
    publishers: int,
    subscribers: int,
    seconds: float,
    window: float,
    hop: float,
    monitor_args: list[str],
    log: Path,
    publisher_procs: int = 1,
    token: str | None = None,
    progress: Any = None,
    ingest: str = "webrtc",
    codec: str = "opus",
) -> dict[str, Any]:
    """One soak (see module doc); ``monitor_args`` are added to the monitor's command line.
    ``ingest``: how the publishers reach the monitor (:data:`INGESTS`); ``codec``: RTP's payload."""
    if ingest not in INGESTS:
        raise SoakError(f"unknown ingest {ingest!r}: use one of {', '.join(INGESTS)}")
    rtp_ports = free_udp_ports(publishers) if ingest == "rtp" else None
    proc, where = await start_monitor(
        [
            *monitor_args,
            *(rtp_specs(rtp_ports, codec) if rtp_ports is not None else []),
            "--ws",
            "127.0.0.1:0",
            "--webrtc",
            "127.0.0.1:0",
            "--window",
            str(window),
            "--hop",
            str(hop),
        ],
        log,
    )
    assert proc.stdout is not None
    drain = asyncio.create_task(discard(proc.stdout), name="soak-monitor-stdout")
    subs = [Subscriber(record_ends=i == 0) for i in range(subscribers)]
    stop = asyncio.Event()
    url = where["ws"] + (f"?token={token}" if token else "")
    readers = [asyncio.create_task(subscribe(url, s, stop), name=f"soak-sub-{i}") for i, s in enumerate(subs)]
    rss: list[tuple[float, float]] = []
    pubs: list[asyncio.subprocess.Process] = []
    sent: dict[str, float] = {}
    started: dict[str, float] = {}
    try:
        await asyncio.sleep(1.0)
        pubs = await start_publishers(
            where["http"],
            publishers,
            publisher_procs,
            seconds,
            token,
            rtp_ports=rtp_ports,
            codec=codec,
            ingest=ingest,
        )
        t0, cpu0, threads = time.monotonic(), cpu_seconds(proc.pid), ThreadCpu(proc.pid)
        lag0 = await lag_buckets(where["http"])
        results = [asyncio.create_task(p.stdout.readline()) for p in pubs if p.stdout is not None]
        next_note = t0 + 60
        while not all(r.done() for r in results):
            rss.append((time.monotonic() - t0, rss_mb(proc.pid)))
            threads.sample()
            if progress is not None and time.monotonic() >= next_note:
                progress(f"[soak] {time.monotonic() - t0:.0f} s, monitor RSS {rss[-1][1]:.0f} MB")
                next_note += 60
            await asyncio.wait(results, timeout=1.0)
        cpu = cpu_seconds(proc.pid) - cpu0
        by_name = threads.by_name()
        lag = lag_summary(lag0, await lag_buckets(where["http"]))
        for r in results:
            line = r.result().decode().strip()
            if not line:
                raise SoakError("a publisher process ended without a result")
            result = json.loads(line)
            sent.update(result["sent_seconds"])
            started.update(result["started"])
        deadline = time.monotonic() + 30
        while not all(set(sent) <= set(s.ended) for s in subs) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # the readers record stream_end; polling their state is simplest
    finally:
        stop.set()
        await asyncio.gather(*readers, return_exceptions=True)
        for p in pubs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
    names = sorted(sent)
    warm = [r for t, r in rss if t >= max(5.0, 0.25 * seconds)] or [r for _, r in rss]
    base, tail = warm[0], warm[-max(1, len(warm) // 10) :]
    lat = sorted(x for s in subs for x in s.latencies)
    e2e = sorted(now - started[n] - t_end for n, t_end, now in subs[0].ends if n in started) if subs else []
    expected = {n: max(1, expected_windows(sent[n], window, hop)) for n in names}
    delivered = {n: min(s.scores.get(n, 0) for s in subs) / expected[n] for n in names}
    most = {n: max(s.scores.get(n, 0) for s in subs) / expected[n] for n in names} if subs else {}
    short = {n: round(t, 1) for n, t in sent.items() if t < 0.98 * seconds}
    report: dict[str, Any] = {
        "ingest": ingest if ingest != "rtp" else f"rtp/{codec}",
        "publishers": publishers,
        "subscribers": subscribers,
        "seconds": seconds,
        "window_s": window,
        "hop_s": hop,
        "delivered_min": round(min(delivered.values()), 4) if delivered else 0.0,
        "delivered_mean": round(statistics.fmean(delivered.values()), 4) if delivered else 0.0,
        "delivered_max": round(max(most.values()), 4) if most else 0.0,
        "lost_messages": sum(s.gaps for s in subs),
        "reported_dropped": sum(s.told_dropped for s in subs),
        "all_ended": all(set(names) <= set(s.ended) for s in subs),
        "streams_cut_short": short,
        "end_reasons": dict(sorted(subs[0].ended.items())) if subs else {},
        "rss_warm_mb": round(base, 1),
        "rss_end_mb": round(statistics.fmean(tail), 1),
        "rss_growth": round(statistics.fmean(tail) / base - 1.0, 4),
        "rss_max_mb": round(max(r for _, r in rss), 1),
        "e2e_p50_ms": percentile_ms(e2e, 0.50),
        "e2e_p95_ms": percentile_ms(e2e, 0.95),
        "latency_p50_ms": percentile_ms(lat, 0.50),
        "latency_p95_ms": percentile_ms(lat, 0.95),
        "scores_received": len(lat),
        "cpu_s_per_stream_s": round(cpu / max(1e-9, sum(sent.values())), 4),
        "cpu_by_thread": by_thread(cpu, by_name, sum(sent.values())),
        "event_loop_lag": lag,
    }
    report["passed"] = bool(
        report["delivered_min"] >= DELIVERED_MIN
        and report["delivered_max"] <= 1.0
        and report["lost_messages"] == 0
        and report["reported_dropped"] == 0
        and report["all_ended"]
        and not short
        and report["rss_growth"] < RSS_GROWTH_MAX
    )
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--publishers", type=int, default=32, help="publishers (default 32)")
    p.add_argument(
        "--ingest",
        choices=INGESTS,
        default="webrtc",
        help="how publishers reach the monitor: WebRTC through POST /offer (default), plain RTP over UDP "
        "to one --rtp port each, or telephony websockets (/twilio: Twilio Media Streams; /pcm: L16 frames)",
    )
    p.add_argument(
        "--codec", choices=("opus", "pcmu"), default="opus", help="--ingest rtp: payload codec (default opus)"
    )
    p.add_argument("--subscribers", type=int, default=200, help="websocket subscribers (default 200)")
    p.add_argument("--seconds", type=float, default=600.0, help="audio each publisher sends (default 600)")
    p.add_argument(
        "--publisher-procs", type=int, default=None, help="processes for the publishers (default: 1 per 16)"
    )
    p.add_argument(
        "--model",
        default=None,
        help="ONNX model for the monitor (default: the embedded one); 'level': a tiny loudness model, so "
        "that the pipeline and not inference is measured (samos.bench.level_model)",
    )
    p.add_argument("--window", type=float, default=None, help="window, s (default: configs/monitor.yaml)")
    p.add_argument("--hop", type=float, default=None, help="hop, s (default: configs/monitor.yaml)")
    p.add_argument("--threads", type=int, default=1, help="the monitor's inference threads (default 1)")
    p.add_argument(
        "--token", default=None, help="run the monitor with this token (publishers and subscribers use it)"
    )
    default_log = Path(tempfile.gettempdir()) / "samos-soak-monitor.log"
    p.add_argument(
        "--log", type=Path, default=default_log, help=f"the monitor's log file (default: {default_log})"
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="run twice: stock asyncio + aiortc hand-off, then samos's ingest; print both and the ratios",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from samos.monitor.aio import loop_factory
    from samos.monitor.aio import run as run_loop
    from samos.monitor.config import load_config

    cfg = load_config(None)
    window = args.window if args.window is not None else cfg.window.window_seconds
    hop = args.hop if args.hop is not None else cfg.window.hop_seconds
    if (
        min(args.publishers, args.subscribers, args.publisher_procs or 1) < 1
        or args.seconds <= 0
        or not 0 < hop <= window
    ):
        print(
            "samos bench soak: need publishers, subscribers >= 1, seconds > 0, 0 < hop <= window",
            file=sys.stderr,
        )
        return 2
    # --quiet: no status lines (cosmetic; the soaks of 2026-11-26 ran before there were any)
    monitor_args = ["--providers", "cpu", "--threads", str(args.threads), "--verbose", "--quiet"]
    tmp = tempfile.TemporaryDirectory(prefix="samos-soak-")
    if args.model == "level":
        from samos.bench.level_model import make_level_model

        try:
            level = make_level_model(Path(tmp.name) / "level.onnx", window_seconds=window)
        except RuntimeError as e:  # no onnx package
            print(f"samos bench soak: {e}", file=sys.stderr)
            return 2
        monitor_args += ["--model", str(level)]
    elif args.model:
        monitor_args += ["--model", args.model]
    if args.token:
        monitor_args += ["--token", args.token]
    procs = args.publisher_procs or max(1, -(-args.publishers // 16))

    def one(extra: list[str], log: Path) -> dict[str, Any]:
        return run_loop(
            run_soak(
                publishers=args.publishers,
                subscribers=args.subscribers,
                seconds=args.seconds,
                window=window,
                hop=hop,
                monitor_args=monitor_args + extra,
                log=log,
                publisher_procs=procs,
                token=args.token,
                progress=lambda s: print(s, file=sys.stderr, flush=True),
                ingest=args.ingest,
                codec=args.codec,
            ),
            loop_factory("auto"),  # the load generator's own loop: as cheap as the monitor's
        )

    try:
        if args.compare:
            baseline = one(STOCK_INGEST, args.log.with_suffix(".stock.log"))
            report: dict[str, Any] = {"stock": baseline, "samos": one([], args.log)}
            report["passed"] = report["samos"]["passed"]
        else:
            report = one([], args.log)
    except (SoakError, OSError, TimeoutError) as e:
        print(f"samos bench soak: {e}", file=sys.stderr)
        return 1
    finally:
        tmp.cleanup()
    if args.json:
        print(json.dumps(report))
    elif args.compare:
        print(side_by_side(report["stock"], report["samos"]))
    else:
        for k, v in report.items():
            print(f"{k:20s} {v}")
    return 0 if report["passed"] else 1


STOCK_INGEST = ["--event-loop", "asyncio", "--webrtc-handoff", "aiortc"]
"""The monitor's flags for ingest as stock asyncio and aiortc do it (``--compare``'s first run)."""
_COMPARED = (
    "delivered_min",
    "delivered_mean",
    "delivered_max",
    "lost_messages",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "latency_p95_ms",
    "cpu_s_per_stream_s",
    "rss_growth",
)


def side_by_side(stock: dict[str, Any], ours: dict[str, Any]) -> str:
    """Two soak reports as a table: each figure for stock ingest, for samos's, and samos / stock."""
    rows = [f"{'':20s} {'stock':>10s} {'samos':>10s} {'samos/stock':>12s}"]
    for key in _COMPARED:
        a, b = stock.get(key), ours.get(key)
        numbers = key != "rss_growth" and isinstance(a, int | float) and isinstance(b, int | float) and a
        ratio = f"{b / a:12.2f}" if numbers else f"{'-':>12s}"
        rows.append(f"{key:20s} {_cell(a)} {_cell(b)} {ratio}")
    for name in ("over_0_1_s", "over_0_5_s"):
        a = (stock.get("event_loop_lag") or {}).get(name)
        b = (ours.get("event_loop_lag") or {}).get(name)
        rows.append(f"{'loop_late_' + name[5:]:20s} {_cell(a)} {_cell(b)} {'-':>12s}")
    rows.append(f"{'passed':20s} {stock['passed']!s:>10s} {ours['passed']!s:>10s}")
    return "\n".join(rows)


def _cell(x: Any) -> str:
    return f"{x:10.4g}" if isinstance(x, int | float) and not isinstance(x, bool) else f"{x!s:>10s}"
