"""``samos bench loss``: what packet loss does to the live MOS, through the real WebRTC path.

Real aiortc publishers (speech pre-encoded to Opus once, 20 ms packets, in-band FEC on as browsers
send it) are signalled through the monitor's ``POST /offer`` on loopback; each publisher's sender
drops its outgoing RTP packets by a seeded pattern before they reach the wire, so the monitor sees
exactly what a lossy network leaves: sequence gaps, aiortc's jitter buffer, the Opus decoder's
concealment (or silence with ``--no-conceal``). The monitor scores every stream as it scores any live
call; the table is the mean MOS of its scored windows and the mean loss ratio its windows report.

Loss patterns (:class:`LossPattern`): ``random`` drops each packet with probability p; ``burst`` drops
runs of at least ``burst`` packets (a run starts where a uniform draw falls below a rate chosen so that
the expected loss is still p). Draws are shared between rates, so the packets lost at 5 % are also lost
at 10 % and 20 %: a higher rate only ever adds losses.

    samos bench loss [--wav FILE ...] [--seconds S] [--rates 0,5,10,20] [--bursts 1,3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from samos.bench.webrtc_load import FRAME, RATE, OpusReplayTrack, encode_opus, speech

PACKETS_PER_SECOND = RATE // FRAME
SHED_MARGIN_PERCENT = 2.0
"""A stream whose windows lost this many points more than its packets had audio dropped inside the
monitor (it fell behind): the run is flagged."""


@dataclass(frozen=True)
class LossPattern:
    """Which RTP packets a sender loses: ``percent`` of them (expected), in runs of at least ``burst``
    packets (1: independent losses). ``seed`` fixes the draws (see the module doc)."""

    percent: float
    burst: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.percent < 100.0:
            raise ValueError(f"loss percent must be in [0, 100), got {self.percent}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1 packet, got {self.burst}")

    @property
    def name(self) -> str:
        kind = "random" if self.burst == 1 else f"burst{self.burst}"
        return f"loss{self.percent:g}-{kind}"

    def mask(self, n: int) -> np.ndarray:
        """Boolean ``[n]``: True for packets that are lost."""
        u = np.random.default_rng(self.seed).random(n)
        rate = self.percent / 100.0
        if self.burst == 1 or rate == 0.0:
            return u < rate
        start = 1.0 - (1.0 - rate) ** (1.0 / self.burst)  # P(a run starts at a packet)
        starts = u < start
        lost = np.zeros(n, bool)
        for k in range(self.burst):  # a packet is lost when a run started at it or up to burst-1 before
            lost[k:] |= starts[: n - k]
        return lost


class LossySender:
    """Makes a sender peer connection lose the RTP packets ``mask`` marks (by send order), as a lossy
    network would: they never reach the wire. RTCP is left alone. ``sent``/``lost``: packets so far."""

    def __init__(self, pc: Any, mask: np.ndarray) -> None:
        from aiortc.rtp import is_rtcp

        self._is_rtcp = is_rtcp
        self._mask = mask
        self.sent = 0
        self.lost = 0
        transport = pc.getSenders()[0].transport
        self._send = transport._send_rtp
        transport._send_rtp = self._send_rtp

    async def _send_rtp(self, data: bytes) -> None:
        if not self._is_rtcp(data):
            k = self.sent
            self.sent += 1
            if k < len(self._mask) and self._mask[k]:
                self.lost += 1
                return
        await self._send(data)


async def _publish_lossy(
    session: Any, base_url: str, track: Any, name: str, mask: np.ndarray
) -> tuple[Any, Any]:
    """Like :func:`samos.bench.webrtc_load.publish`, with the sender's packets dropped from the start."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    pc.addTrack(track)
    lossy = LossySender(pc, mask)
    await pc.setLocalDescription(await pc.createOffer())
    body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, "name": name}
    async with session.post(f"{base_url}/offer", json=body) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 200 or not isinstance(answer, dict) or "sdp" not in answer:
            await pc.close()
            raise RuntimeError(f"/offer answered {resp.status}: {answer}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    return pc, lossy


async def measure(
    scorer: Any,
    audio: np.ndarray,
    patterns: Sequence[LossPattern],
    *,
    conceal: bool = True,
    fec: bool = True,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Publish ``audio`` (mono float32 48 kHz) once per pattern, all at once, into an in-process monitor
    on loopback; return one row per pattern (see :func:`summarise`)."""
    import aiohttp
    from websockets.asyncio.client import connect

    from samos.monitor.app import Monitor
    from samos.monitor.config import AlertConfig, HttpConfig, MonitorConfig, WebsocketConfig

    base = MonitorConfig()
    cfg = replace(
        base,
        window=replace(
            base.window,
            window_seconds=window_seconds or base.window.window_seconds,
            hop_seconds=hop_seconds or base.window.hop_seconds,
        ),
        ws=WebsocketConfig(host="127.0.0.1", port=0, client_queue=100_000),
        http=HttpConfig(
            enabled=True, host="127.0.0.1", port=0, max_peers=max(1, len(patterns)), webrtc_conceal=conceal
        ),
        alerts=AlertConfig(enabled=False),
        log=None,
    )
    seconds = len(audio) / RATE
    packets = encode_opus(audio, fec=fec)
    n_packets = len(packets) + PACKETS_PER_SECOND  # the track may send a few more than the audio holds
    mon = Monitor(cfg, scorer)
    await mon.start()
    scores: dict[str, list[dict[str, Any]]] = {p.name: [] for p in patterns}
    senders: dict[str, LossySender] = {}
    peers: list[Any] = []
    try:
        assert mon.ws_url is not None and mon.http_address is not None
        host, port = mon.http_address
        async with connect(mon.ws_url, max_size=None) as ws, aiohttp.ClientSession() as http:
            await asyncio.wait_for(ws.recv(), 10)  # hello
            for p in patterns:
                track = OpusReplayTrack(packets, seconds)
                pc, lossy = await _publish_lossy(
                    http, f"http://{host}:{port}", track, p.name, p.mask(n_packets)
                )
                senders[p.name] = lossy
                peers.append(pc)
            # The publishers stay connected after their audio: each stream ends by the monitor's
            # inactivity timeout once it has taken every frame. Hanging up would end it at once and
            # discard what a monitor running behind (a busy CPU) still had queued in aiortc.
            ended: set[str] = set()
            limit = timeout or 60.0 + 3 * seconds
            deadline = time.monotonic() + limit
            while len(ended) < len(patterns):
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"streams still running after {limit:.0f} s: {set(scores) - ended}"
                        ) from None
                    continue
                if msg.get("stream") not in scores:
                    continue
                if msg["type"] == "score":
                    scores[msg["stream"]].append(msg)
                elif msg["type"] == "stream_end":
                    ended.add(msg["stream"])
    finally:
        for pc in peers:
            await pc.close()
        await mon.stop()
    return [summarise(p, scores[p.name], senders[p.name]) for p in patterns]


def summarise(pattern: LossPattern, scores: list[dict[str, Any]], sender: LossySender) -> dict[str, Any]:
    """One stream's row: packets sent/lost on the wire, the windows' mean loss ratio (what the monitor
    reports), mean MOS over the scored windows and its standard error across windows."""
    mos = np.array([m["mos"] for m in scores if m["status"] == "ok" and m["mos"] is not None], float)
    loss = np.array([m["diagnostics"].get("loss_ratio") or 0.0 for m in scores], float)
    return {
        "stream": pattern.name,
        "loss_percent": pattern.percent,
        "burst": pattern.burst,
        "packets_sent": sender.sent,
        "packets_lost": sender.lost,
        "wire_loss_percent": round(100.0 * sender.lost / max(1, sender.sent), 2),
        "window_loss_percent": round(100.0 * float(loss.mean()), 2) if loss.size else None,
        "windows": len(scores),
        "scored": int(mos.size),
        "mos": round(float(mos.mean()), 3) if mos.size else None,
        "mos_se": round(float(mos.std(ddof=1) / math.sqrt(mos.size)), 3) if mos.size > 1 else None,
    }


def warm_up(scorer: Any, window_seconds: float) -> None:
    """Run the model a few times before measuring: onnxruntime's first calls are slow, and a monitor
    that falls behind at the start sheds live audio, which would count as loss."""
    n = int(window_seconds * 16_000)
    for _ in range(3):
        scorer.score(np.zeros((1, n), np.float32), np.zeros((1, 3 * n), np.float32))


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`measure` rows."""
    out = [
        "| loss | pattern | packets lost (wire) | window loss ratio | windows scored | MOS | MOS std. err. |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pattern = "random" if r["burst"] == 1 else f"bursts of >= {r['burst']} packets"
        out.append(
            f"| {r['loss_percent']:g} % | {pattern} | {r['packets_lost']}/{r['packets_sent']} "
            f"({r['wire_loss_percent']:.1f} %) | {r['window_loss_percent']} % | {r['scored']}/{r['windows']} "
            f"| {r['mos']} | {r['mos_se']} |"
        )
    return "\n".join(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wav",
        action="append",
        default=[],
        help="speech to publish (repeatable, joined with 0.4 s pauses; default: the bundled demo call)",
    )
    p.add_argument("--seconds", type=float, default=None, help="publish only the first S seconds")
    p.add_argument("--rates", default="0,5,10,20", help="packet loss rates, percent (default: 0,5,10,20)")
    p.add_argument("--bursts", default="1,3", help="burst lengths in packets; 1 = random (default: 1,3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the loss draws")
    p.add_argument("--model", help="ONNX model, or an embedded model: default (the default), compact")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime CPU threads")
    p.add_argument("--window", type=float, help="window seconds (default: the monitor's)")
    p.add_argument("--hop", type=float, help="hop seconds (default: the monitor's)")
    p.add_argument("--no-conceal", action="store_true", help="lost audio as silence, not Opus PLC/FEC")
    p.add_argument("--no-fec", action="store_true", help="encode without Opus in-band FEC")
    p.add_argument(
        "--parallel",
        type=int,
        default=2,
        help="publishers streaming at once (default: 2; more must not "
        "outrun the CPU, or the monitor sheds audio it cannot score in time and that shows as loss)",
    )
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from samos.audio import AudioError
    from samos.monitor.config import WindowConfig as MonitorWindow
    from samos.runtime.scorer import Scorer

    try:
        rates = _numbers(args.rates, "--rates")
        bursts = [int(b) for b in _numbers(args.bursts, "--bursts")]
        patterns = [LossPattern(0.0, 1, args.seed)] if 0.0 in rates else []
        patterns += [LossPattern(r, b, args.seed) for b in bursts for r in rates if r > 0]
        if not patterns:
            raise ValueError("no loss rate to measure")
        if args.parallel < 1:
            raise ValueError("--parallel must be >= 1")
        parts = [speech(w) for w in args.wav] if args.wav else [speech()]
        pause = np.zeros(int(0.4 * RATE), np.float32)
        audio = np.concatenate([x for part in parts for x in (part, pause)][:-1])
        if args.seconds:
            audio = audio[: int(args.seconds * RATE)]
        default = MonitorWindow()
        window = MonitorWindow(  # validates --window and --hop as the monitor would
            window_seconds=args.window or default.window_seconds, hop_seconds=args.hop or default.hop_seconds
        )
        scorer = Scorer(args.model, providers=("cpu",), threads=args.threads)
        warm_up(scorer, window.window_seconds)
    except (ValueError, OSError, AudioError) as e:
        print(f"samos bench loss: {e}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    shed = SHED_MARGIN_PERCENT
    try:
        # One short unmeasured publisher first: the first streams of a process otherwise start behind
        # (first use of aiortc, the model, the loop) and shed audio the wire never lost.
        asyncio.run(measure(scorer, audio[: 5 * RATE], [LossPattern(0.0)], window_seconds=args.window))
        for i in range(0, len(patterns), args.parallel):
            group = patterns[i : i + args.parallel]
            print(f"samos bench loss: {', '.join(p.name for p in group)} ...", file=sys.stderr, flush=True)
            rows += asyncio.run(
                measure(
                    scorer,
                    audio,
                    group,
                    conceal=not args.no_conceal,
                    fec=not args.no_fec,
                    window_seconds=window.window_seconds,
                    hop_seconds=window.hop_seconds,
                )
            )
    except (TimeoutError, RuntimeError, OSError) as e:  # a refused offer, a stream that never ended
        print(f"samos bench loss: {e}", file=sys.stderr)
        return 1
    for r in rows:
        if r["window_loss_percent"] is not None and r["window_loss_percent"] > r["wire_loss_percent"] + shed:
            print(
                f"samos bench loss: warning: {r['stream']} lost {r['window_loss_percent']} % of its audio "
                f"but only {r['wire_loss_percent']} % of its packets: the monitor shed audio it could not "
                "keep up with (busy CPU?); rerun with a lower --parallel",
                file=sys.stderr,
            )
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(
            f"{len(audio) / RATE:.1f} s of speech per stream, {args.parallel} publishers at once, "
            f"{'Opus PLC/FEC' if not args.no_conceal else 'silence'} for lost audio"
        )
        print(table(rows))
    return 0
