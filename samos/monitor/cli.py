"""``monitor`` / ``samos monitor``: run the real-time monitor on sound cards, WebRTC and files.

Defaults come from configs/monitor.yaml (``--config`` for another file); the flags below override
them. Ctrl-C / SIGTERM stop cleanly: sources close, queued windows are scored, every subscriber
gets the streams' ``stream_end``, then the servers close.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import warnings
from dataclasses import replace
from typing import Any

from samos.config import ConfigError
from samos.monitor.aio import EVENT_LOOPS, loop_factory, loop_name
from samos.monitor.aio import run as run_loop
from samos.monitor.config import MonitorConfig, load_config, override, parse_hostport
from samos.monitor.source import Source, SourceError

TOKEN_ENV = "SAMOS_MONITOR_TOKEN"
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)=(.+)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("sources (any number, together)")
    src.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="[NAME=]DEV",
        help="sound card: index, exact name or unique part of it (e.g. hw:1); repeatable",
    )
    src.add_argument("--list-devices", action="store_true", help="list capture devices and exit")
    src.add_argument(
        "--webrtc", metavar="HOST:PORT", help="accept WebRTC publishers and serve the pages here"
    )
    src.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="[NAME=]PATH_OR_URL",
        help="audio file or network stream (anything PyAV opens); repeatable",
    )
    src.add_argument(
        "--rtp",
        action="append",
        default=[],
        metavar="[NAME=]HOST:PORT[,codec=..]",
        help="RTP audio on a UDP port: codec=opus|pcmu|pcma|g722|l16 (default opus), rate=HZ (l16), "
        "pt=N, channels=N (l16), idle=S (end after S s without packets); repeatable (docs/INGEST.md)",
    )
    src.add_argument("--no-realtime", action="store_true", help="read files as fast as possible")
    src.add_argument("--loop", action="store_true", help="repeat files forever")
    p.add_argument("--config", help="monitor YAML (default: configs/monitor.yaml)")
    p.add_argument("--ws", metavar="HOST:PORT", help="websocket server address (default from the config)")
    p.add_argument("--no-ws", action="store_true", help="no websocket server")
    p.add_argument("--model", help="ONNX model (default: the embedded model)")
    p.add_argument("--providers", help="comma-separated: tensorrt,cuda,cpu")
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    p.add_argument("--window", type=float, metavar="S", help="scoring window, seconds")
    p.add_argument("--hop", type=float, metavar="S", help="hop between windows, seconds")
    p.add_argument("--log", metavar="JSONL", help="append every score and alert to this file")
    p.add_argument("--webhook", metavar="URL", help="POST alerts to this URL")
    p.add_argument("--token", help=f"subscriber/publisher token (or set {TOKEN_ENV})")
    p.add_argument("--keep-running", action="store_true", help="keep serving after every source ended")
    p.add_argument("--backend", metavar="inprocess|ray://HOST:PORT|triton://HOST:PORT",
                   help="where windows are scored (default from the config: inprocess)")
    p.add_argument("--webrtc-handoff", choices=("batched", "aiortc"),
                   help="decoded audio to the loop: batched (default) or aiortc's own, per frame")
    p.add_argument("--event-loop", choices=EVENT_LOOPS,
                   help="auto (default): uvloop where installed, else asyncio's own loop")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")


def build_config(args: argparse.Namespace) -> MonitorConfig:
    """The configuration: YAML defaults, then the flags that were given."""
    cfg = load_config(args.config)
    w = override(cfg.window, window_seconds=args.window, hop_seconds=args.hop)
    if w.min_final_seconds > w.window_seconds:
        w = replace(w, min_final_seconds=w.window_seconds)
    worker = override(
        cfg.worker,
        threads=args.threads,
        providers=tuple(s.strip() for s in args.providers.split(",")) if args.providers else None,
    )
    ws = cfg.ws
    if args.no_ws:
        ws = replace(ws, enabled=False)
    elif args.ws:
        host, port = parse_hostport(args.ws, "--ws")
        ws = replace(ws, enabled=True, host=host, port=port)
    http = cfg.http
    if args.webrtc:
        host, port = parse_hostport(args.webrtc, "--webrtc")
        http = replace(http, enabled=True, host=host, port=port)
    http = override(http, webrtc_handoff=args.webrtc_handoff)
    token = args.token or os.environ.get(TOKEN_ENV) or cfg.auth.token
    return replace(
        cfg,
        model=args.model or cfg.model,
        backend=args.backend or cfg.backend,
        window=w,
        worker=worker,
        ws=ws,
        http=http,
        auth=replace(cfg.auth, token=token),
        log=args.log or cfg.log,
        event_loop=args.event_loop or cfg.event_loop,
        alerts=override(cfg.alerts, webhook=args.webhook),
        source=override(
            cfg.source, realtime=False if args.no_realtime else None, loop=True if args.loop else None
        ),
        exit_when_done=cfg.exit_when_done and not args.keep_running and not http.enabled,
    )


def split_name(spec: str) -> tuple[str | None, str]:
    """``"name=path"`` -> (name, path); a bare path or URL -> (None, spec)."""
    m = _NAME.match(spec)
    if m and "/" not in m.group(1) and ":" not in m.group(1):
        return m.group(1), m.group(2)
    return None, spec


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.list_devices:
        from samos.monitor.sources.device import format_devices, input_devices

        try:
            print(format_devices(input_devices()) or "no capture devices")
        except SourceError as e:
            print(f"monitor: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        cfg = build_config(args)
        if not (args.device or args.file or args.webrtc or args.rtp):
            raise ConfigError(
                "give at least one source: --device, --file, --rtp or --webrtc (--list-devices lists cards)"
            )
        from samos.monitor.backends import open_backend

        factory = loop_factory(cfg.event_loop)  # a ValueError names what is missing
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scorer = open_backend(cfg)  # inprocess: the Scorer; ray:// / triton://: a remote client
        for w in caught:  # e.g. a GPU provider that is not available: one readable line each
            print(f"monitor: note: {w.message}", file=sys.stderr)
    except ValueError as e:  # ConfigError, ModelFileError, bad provider names
        print(f"monitor: {e}", file=sys.stderr)
        return 2
    return run_loop(serve(cfg, scorer, args.device, args.file, rtp=args.rtp), factory)


async def open_sources(
    cfg: MonitorConfig, devices: list[str], files: list[str], rtp: list[str] | tuple[str, ...] = ()
) -> list[Source]:
    """Open every requested source (closing those opened so far when one fails)."""
    from samos.monitor.sources.file import FileSource

    opened: list[Source] = []
    try:
        for spec in devices:
            from samos.monitor.sources.device import DeviceSource

            name, dev = split_name(spec)
            opened.append(DeviceSource.open(dev, name, cfg.source.device_queue_seconds))
        for spec in files:
            name, path = split_name(spec)
            opened.append(
                await FileSource.open(
                    path, name, cfg.source.realtime, cfg.source.loop, cfg.source.chunk_seconds
                )
            )
        for spec in rtp:
            from samos.monitor.sources.rtp import RtpSource

            opened.append(await RtpSource.open(spec, cfg.ingest.rtp_options()))
    except BaseException:
        for s in opened:
            await s.close()
        raise
    return opened


async def serve(
    cfg: MonitorConfig,
    scorer: Any,
    devices: list[str],
    files: list[str],
    rtp: list[str] | tuple[str, ...] = (),
) -> int:
    """Run until every source ended (when ``cfg.exit_when_done``) or SIGINT/SIGTERM."""
    from samos.monitor.app import Monitor

    monitor = Monitor(cfg, scorer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await monitor.start()
        sources = await open_sources(cfg, devices, files, rtp)
    except (SourceError, ValueError, OSError) as e:
        print(f"monitor: {e}", file=sys.stderr)
        await monitor.stop()
        return 2
    for s in sources:
        await monitor.add_source(s)
    _announce(monitor, scorer)
    waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait(), name="monitor:signal")]
    if cfg.exit_when_done:
        waiters.append(asyncio.create_task(monitor.wait_idle(), name="monitor:idle"))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in waiters:
            t.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await monitor.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def _announce(monitor: Any, scorer: Any) -> None:
    print(f"monitor: model {getattr(scorer, 'path', '?')} on {getattr(scorer, 'provider', '?')}", flush=True)
    logging.getLogger(__name__).info("event loop: %s", loop_name())
    if monitor.ws_address:
        h, p = monitor.ws_address
        print(f"monitor: websocket ws://{h}:{p}/", flush=True)
    if monitor.http_address:
        h, p = monitor.http_address
        print(f"monitor: publish page http://{h}:{p}/  overlay http://{h}:{p}/overlay", flush=True)
    for name, st in monitor.streams.items():
        print(f"monitor: stream {name} ({st.source.kind}, {st.source.rate} Hz)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monitor", description="samos real-time speech-quality monitor")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
