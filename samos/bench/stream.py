"""``samos bench stream``: N real-time file streams through the real monitor pipeline (in process).

Each stream is a file source paced in real time; a websocket client subscribed to all streams
records when each score arrives. Reports CPU seconds per stream-second, end-to-end latency (from the
capture time of a window's last sample to the score's arrival at the client) and how many windows
were expected and delivered. ``--compare`` runs it twice in one process on the same scorer and audio:
the incremental path (the model's pair, frame features once per hop) and the whole-window path,
side by side with their ratio. Each run is on the event loop the monitor runs on (``event_loop`` in
the monitor YAML: uvloop where installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from samos.audio import load_audio
from samos.monitor import aio
from samos.monitor.config import AlertConfig, WebsocketConfig, load_config
from samos.monitor.normalise import Normaliser
from samos.monitor.source import AudioChunk
from samos.monitor.window import Windower


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--streams", type=int, default=4, help="concurrent streams")
    p.add_argument("--file", help="audio file every stream plays (default: synthetic speech-like audio)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic audio, seconds")
    p.add_argument("--model", help="ONNX model, or an embedded model: default (the default), compact")
    p.add_argument(
        "--compare",
        action="store_true",
        help="run the incremental path (the model's pair) and the whole-window path side by side",
    )
    p.add_argument(
        "--whole-window",
        action="store_true",
        help="score whole windows even when the model has an incremental pair",
    )
    p.add_argument(
        "--no-int8",
        action="store_true",
        help="run the model's float32 frames graph even where it ships a static-int8 one",
    )
    p.add_argument("--providers", default="cpu", help="comma-separated: tensorrt,cuda,cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for inference")
    p.add_argument("--window", type=float, help="scoring window, seconds (default from configs/monitor.yaml)")
    p.add_argument("--hop", type=float, help="hop, seconds")
    p.add_argument("--config", help="monitor YAML")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--backend",
        default="inprocess",
        help="inprocess (default), ray (a private local Ray Serve deployment, its CPU counted) or "
        "ray://HOST:PORT (a running `samos serve`; its CPU is not counted)",
    )
    p.add_argument("--replicas", type=int, default=1, help="replicas for --backend ray (default: 1)")


def synthetic_speech(seconds: float, rate: int = 48_000, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: noise bursts at a 4 Hz syllable rate with pauses (float32 ``[n]``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2 * (np.sin(2 * np.pi * 0.3 * t) > -0.9)
    return (rng.standard_normal(len(t)) * env * 0.1).astype(np.float32)


def expected_windows(audio: np.ndarray, rate: int, window_s: float, hop_s: float, min_final_s: float) -> int:
    """Windows the pipeline must produce for ``audio`` (same normaliser and windower, one chunk)."""
    n = Normaliser(rate)
    w = Windower(window_s, hop_s, min_final_s)
    segs = [n.push(AudioChunk(audio, rate, 0, 0.0)), n.flush()]
    return sum(len(w.push(s)) for s in segs) + len(w.flush())


async def bench(
    args: argparse.Namespace, scorer: Any, path: str, audio: np.ndarray, rate: int, incremental: bool = True
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    from samos.monitor.app import Monitor
    from samos.monitor.sources.file import FileSource

    cfg = load_config(args.config)
    win = replace(
        cfg.window,
        window_seconds=args.window or cfg.window.window_seconds,
        hop_seconds=args.hop or cfg.window.hop_seconds,
    )
    cfg = replace(
        cfg,
        window=win,
        ws=WebsocketConfig(host="127.0.0.1", port=0, client_queue=100_000),
        alerts=AlertConfig(enabled=False),
        log=None,
        auth=replace(cfg.auth, token=None),
        worker=replace(cfg.worker, incremental=incremental),
    )
    mon = Monitor(cfg, scorer)
    await mon.start()
    latencies: list[float] = []
    ended = 0
    assert mon.ws_url is not None
    async with connect(mon.ws_url, max_size=None) as ws:
        await asyncio.wait_for(ws.recv(), 10)  # hello
        sources = [await FileSource.open(path, f"s{i}", realtime=True) for i in range(args.streams)]
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        for s in sources:
            await mon.add_source(s)
        while ended < args.streams:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 60 + len(audio) / rate))
            if msg["type"] == "score":
                latencies.append(time.monotonic() - msg["t_capture"])
            ended += msg["type"] == "stream_end"
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    await mon.stop()
    seconds = len(audio) / rate
    lat = np.array(latencies) * 1000.0 if latencies else np.array([np.nan])
    return {
        "streams": args.streams,
        "audio_seconds_per_stream": round(seconds, 3),
        "window_seconds": win.window_seconds,
        "hop_seconds": win.hop_seconds,
        "provider": getattr(scorer, "provider", None),
        "backend": args.backend,
        "event_loop": aio.loop_name(),
        "path": "incremental" if incremental and getattr(scorer, "pair", None) else "whole-window",
        "int8": bool(incremental and getattr(scorer, "frames_int8", False)),
        "int8_graphs": list(getattr(scorer, "int8_graphs", ())) if incremental else [],
        "wall_s": round(wall, 3),
        "cpu_s_per_stream_s": round(cpu / (args.streams * seconds), 5),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
        "windows_expected": args.streams
        * expected_windows(
            audio, rate, win.window_seconds, win.hop_seconds, max(win.min_final_seconds, mon.min_seconds)
        ),
        "windows_delivered": len(latencies),
    }


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and all its descendants (a local Ray cluster included)."""
    try:
        import psutil
    except ImportError:
        return time.process_time()
    total = 0.0
    me = psutil.Process()
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += t.user + t.system
    return total


def open_scorer(args: argparse.Namespace, window: float, stack: contextlib.ExitStack) -> Any:
    """The backend under test: an in-process Scorer, a private local Ray Serve deployment or ray://HOST:PORT."""
    providers = tuple(args.providers.split(","))
    if args.backend == "inprocess":
        from samos.runtime.scorer import Scorer

        return Scorer(
            args.model, providers=providers, threads=args.threads, max_seconds=window, int8=not args.no_int8
        )
    if args.backend == "ray":
        try:
            from samos.serve.deployment import ServeSettings, local_service
        except ImportError as e:
            raise ValueError(f"--backend ray needs Ray Serve: pip install 'samos[serve]' ({e})") from None
        settings = ServeSettings(
            model=args.model,
            providers=providers,
            threads=args.threads,
            num_cpus=args.threads,
            num_replicas=args.replicas,
            max_seconds=window,
        )
        return stack.enter_context(local_service(settings))
    from samos.monitor.backends import parse_backend
    from samos.serve.client import ServeClient

    spec = parse_backend(args.backend)
    if spec.kind != "ray":
        raise ValueError(f"--backend must be inprocess, ray or ray://HOST:PORT, got {args.backend!r}")
    client = ServeClient(spec.host, spec.port, route=spec.model)
    stack.callback(client.close)
    return client


def run(args: argparse.Namespace) -> int:
    if args.streams < 1:
        print("samos bench stream: --streams must be >= 1")
        return 2
    stack = contextlib.ExitStack()
    try:
        cfg = load_config(args.config)
        window = args.window or cfg.window.window_seconds
        loop = aio.loop_factory(cfg.event_loop)  # the monitor's own loop (uvloop where installed)
        scorer = open_scorer(args, window, stack)
        with tempfile.TemporaryDirectory() as tmp:
            if args.file:
                path = args.file
                audio, rate = load_audio(path)
            else:
                import soundfile as sf

                rate, audio = 48_000, synthetic_speech(args.seconds)
                path = str(Path(tmp) / "speech.wav")
                sf.write(path, audio, rate, subtype="FLOAT")
            if args.compare and getattr(scorer, "pair", None) is None:
                raise ValueError(
                    "--compare needs a model with an incremental pair (samos export --incremental)"
                )
            if args.compare:
                fp32 = None
                if getattr(scorer, "frames_int8", False):  # the float32 frames graph beside it
                    fp32 = open_scorer(argparse.Namespace(**{**vars(args), "no_int8": True}), window, stack)
                    warm_up(fp32)
                warm_up(scorer)
                inc = aio.run(bench(args, scorer, path, audio, rate, incremental=True), loop)
                inc32 = None if fp32 is None else aio.run(bench(args, fp32, path, audio, rate), loop)
                whole = aio.run(bench(args, scorer, path, audio, rate, incremental=False), loop)
                result = compare(inc, whole, inc32)
            else:
                result = aio.run(bench(args, scorer, path, audio, rate, not args.whole_window), loop)
    except ValueError as e:
        print(f"samos bench stream: {e}")
        return 2
    finally:
        stack.close()
    if args.json:
        print(json.dumps(result))
    elif args.compare:
        print(compare_table(result))
    else:
        for k, v in result.items():
            print(f"{k:>26}: {v}")
    return 0


def warm_up(scorer: Any) -> None:
    """One window through each path first, so that neither run pays onnxruntime's first calls."""
    from samos.runtime.incremental import WindowJob

    n = int(scorer.info.window_seconds * 16_000)
    w16 = 0.1 * np.sin(np.arange(n, dtype=np.float32) / 7.0)
    w48 = np.repeat(w16, 3)
    scorer.score(w16[None], w48[None])
    state = scorer.new_stream()
    for start in (0, 16_000):
        scorer.score_windows([WindowJob(state, start, w16, w48)])


COMPARED = ("cpu_s_per_stream_s", "latency_ms_p50", "latency_ms_p95", "windows_expected", "windows_delivered")


def _ratio(num: dict[str, Any], den: dict[str, Any]) -> dict[str, float | None]:
    keys = ("cpu_s_per_stream_s", "latency_ms_p50", "latency_ms_p95")
    return {k: round(num[k] / den[k], 3) if den[k] else None for k in keys}


def compare(
    incremental: dict[str, Any], whole: dict[str, Any], incremental_fp32: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The runs and ``whole / incremental`` for CPU and latency (> 1: the incremental path is cheaper);
    with ``incremental_fp32`` (the model ships int8 frames) also that run and ``fp32 / int8``."""
    out = {
        "incremental": incremental,
        "whole_window": whole,
        "whole_over_incremental": _ratio(whole, incremental),
    }
    if incremental_fp32 is not None:
        out["incremental_fp32"] = incremental_fp32
        out["fp32_over_int8"] = _ratio(incremental_fp32, incremental)
    return out


def compare_table(result: dict[str, Any]) -> str:
    """The ``--compare`` result as a markdown table."""
    inc, whole, ratio = result["incremental"], result["whole_window"], result["whole_over_incremental"]
    rows = [
        f"{inc['streams']} streams x {inc['audio_seconds_per_stream']} s, window {inc['window_seconds']} s, "
        f"hop {inc['hop_seconds']} s, provider {inc['provider']}, event loop {inc.get('event_loop')}",
        "",
    ]
    inc32, r32 = result.get("incremental_fp32"), result.get("fp32_over_int8", {})
    graphs = "+".join(inc.get("int8_graphs") or ["frames"])
    if inc32 is None:
        rows += ["| | incremental | whole-window | whole / incremental |", "|---|---|---|---|"]
    else:
        rows += [
            f"| | incremental (int8 {graphs}) | incremental (fp32) | whole-window | fp32 / int8 | "
            "whole / incremental |",
            "|---|---|---|---|---|---|",
        ]
    for k in COMPARED:
        r = ratio.get(k)
        mid = "" if inc32 is None else f"{inc32[k]} | "
        extra = "" if inc32 is None else f"{'' if r32.get(k) is None else r32[k]} | "
        rows.append(f"| {k} | {inc[k]} | {mid}{whole[k]} | {extra}{'' if r is None else r} |")
    return "\n".join(rows)
