"""``monitor`` / ``samos monitor``: run the real-time monitor on sound cards, WebRTC and files.

Defaults come from configs/monitor.yaml (``--config`` for another file); the flags below override
them. Ctrl-C / SIGTERM stop cleanly: sources close, queued windows are scored, every subscriber
gets the streams' ``stream_end``, then the servers close.

On start it prints a banner (model and the provider that runs it, addresses, pages, metrics,
thresholds, streams), then one status line per stream while it runs (see
:mod:`samos.monitor.console`; ``--quiet`` turns them off). Errors follow :mod:`samos.errors`: one
line, exit 2 when the command cannot run as given, 1 when something fails at run time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import tracemalloc
from dataclasses import replace
from typing import Any

from samos.config import ConfigError
from samos.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, one_line, report, run_command
from samos.monitor.aio import EVENT_LOOPS, loop_factory, loop_name
from samos.monitor.aio import run as run_loop
from samos.monitor.config import AlertConfig, MonitorConfig, load_config, override, parse_hostport
from samos.monitor.console import PREFIX, StatusBoard, TextOut, banner_lines
from samos.monitor.lineout import ThreadedOut
from samos.monitor.memtrace import TraceSpec, trace
from samos.monitor.source import Source, SourceError
from samos.runtime.providers import add_provider_arguments

PROG = "monitor"

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
    p.add_argument("--model", help="ONNX model, or an embedded model: default (the default), compact")
    add_provider_arguments(p)  # default from the config (worker.providers)
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    p.add_argument("--window", type=float, metavar="S", help="scoring window, seconds")
    p.add_argument("--hop", type=float, metavar="S", help="hop between windows, seconds")
    p.add_argument("--log", metavar="JSONL", help="append every score and alert to this file")
    p.add_argument("--webhook", metavar="URL", help="POST alerts to this URL")
    a = AlertConfig()
    p.add_argument(
        "--alert-below", type=float, metavar="MOS",
        help=f"alert when the rolling MOS stays below this (alerts.threshold, default {a.threshold}; a MOS "
        "on the model's own scale: see docs/MONITOR.md)",
    )
    p.add_argument(
        "--alert-for", type=float, metavar="S",
        help="seconds the rolling MOS must stay below --alert-below to raise (and above it plus the "
        f"hysteresis to clear) (alerts.min_duration_seconds, default {a.min_duration_seconds})",
    )
    p.add_argument(
        "--no-speech-alert", type=float, metavar="S",
        help="alert when a stream that carried speech has none for this many seconds "
        f"(alerts.no_speech_seconds, default {a.no_speech_seconds})",
    )
    p.add_argument("--token", help=f"subscriber/publisher token (or set {TOKEN_ENV})")
    p.add_argument("--keep-running", action="store_true", help="keep serving after every source ended")
    p.add_argument("--backend", metavar="inprocess|ray://HOST:PORT|triton://HOST:PORT",
                   help="where windows are scored (default from the config: inprocess)")
    p.add_argument("--webrtc-handoff", choices=("batched", "aiortc"),
                   help="decoded audio to the loop: batched (default) or aiortc's own, per frame")
    p.add_argument("--event-loop", choices=EVENT_LOOPS,
                   help="auto (default): uvloop where installed, else asyncio's own loop")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-stream status lines while running")
    p.add_argument("-v", "--verbose", action="store_true", help="log more; tracebacks on errors")


def build_config(args: argparse.Namespace) -> MonitorConfig:
    """The configuration: YAML defaults, then the flags that were given."""
    cfg = load_config(args.config)
    w = override(cfg.window, window_seconds=args.window, hop_seconds=args.hop)
    if w.min_final_seconds > w.window_seconds:
        w = replace(w, min_final_seconds=w.window_seconds)
    from samos.runtime.providers import parse_providers

    worker = override(
        cfg.worker,
        threads=args.threads,
        providers=parse_providers(args.providers) if args.providers else None,
        fallback=True if args.fallback else None,
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
        alerts=override(
            cfg.alerts,
            webhook=args.webhook,
            threshold=args.alert_below,
            min_duration_seconds=args.alert_for,
            no_speech_seconds=args.no_speech_alert,
        ),
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
            return report(PROG, one_line(e), EXIT_FAILURE)
        return EXIT_OK
    try:
        cfg = build_config(args)
        if not (args.device or args.file or args.webrtc or args.rtp):
            raise ConfigError(
                "give at least one source: --device, --file, --rtp or --webrtc (--list-devices lists cards)"
            )
        factory = loop_factory(cfg.event_loop)  # a ValueError names what is missing
        memtrace = TraceSpec.from_env()  # SAMOS_TRACEMALLOC: opt-in, for diagnosing memory growth
    except ValueError as e:  # ConfigError, bad provider names, an event loop that is not installed
        raise UsageError(one_line(e)) from None
    if memtrace is not None and memtrace.frames:  # before the model loads: everything after is traced
        tracemalloc.start(memtrace.frames)
    from samos.monitor.backends import BackendError, open_backend
    from samos.runtime.modelinfo import ModelFileError

    try:
        scorer = open_backend(cfg)  # inprocess: the Scorer; ray:// / triton://: a remote client
    except BackendError as e:  # configured right, but the server does not answer as it should
        return report(PROG, one_line(e), EXIT_FAILURE)
    except (ModelFileError, ValueError) as e:  # a bad model file, a provider that is not installed
        raise UsageError(one_line(e)) from None
    out = console_out() if not args.quiet else sys.stdout
    board = StatusBoard(out, tty=sys.stdout.isatty(), enabled=not args.quiet)
    try:
        return run_loop(
            serve(cfg, scorer, args.device, args.file, board, rtp=args.rtp, memtrace=memtrace), factory
        )
    finally:
        if isinstance(out, ThreadedOut):
            out.close()


def console_out() -> TextOut:
    """Stdout for the status lines: through a writer thread when it is a file descriptor (a stdout
    that nobody reads must not block the event loop: :mod:`samos.monitor.lineout`), else as it is."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a StringIO (tests), closed
        return sys.stdout
    sys.stdout.flush()
    return ThreadedOut(fd, prefix=PREFIX)


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
    board: StatusBoard | None = None,
    rtp: list[str] | tuple[str, ...] = (),
    memtrace: TraceSpec | None = None,
) -> int:
    """Run until every source ended (when ``cfg.exit_when_done``) or SIGINT/SIGTERM.

    ``board``: the console's status lines (None: none); ``rtp``: ``--rtp`` specs; ``memtrace``:
    tracemalloc reports to take (:mod:`samos.monitor.memtrace`).
    """
    from samos.monitor.app import Monitor

    monitor = Monitor(cfg, scorer)
    if board is not None:
        monitor.listeners.append(board.update)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await monitor.start()
    except OSError as e:  # e.g. the port is in use: the command was right, the machine said no
        await monitor.stop()
        return report(PROG, one_line(e), EXIT_FAILURE)
    try:
        sources = await open_sources(cfg, devices, files, rtp)
    except (SourceError, ValueError) as e:  # a file that does not exist, an unknown sound card
        await monitor.stop()
        return report(PROG, one_line(e), EXIT_USAGE)
    except OSError as e:
        await monitor.stop()
        return report(PROG, one_line(e), EXIT_FAILURE)
    for line in banner_lines(cfg, monitor.model, monitor.ws_url, monitor.http_address, _notes(scorer)):
        print(f"{PROG}: {line}", flush=True)
    logging.getLogger(__name__).info("event loop: %s", loop_name())
    for s in sources:
        name = await monitor.add_source(s)
        print(f"{PROG}: stream {name} ({s.kind}, {s.rate} Hz)", flush=True)
    waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait(), name="monitor:signal")]
    if cfg.exit_when_done:
        waiters.append(asyncio.create_task(monitor.wait_idle(), name="monitor:idle"))
    status = asyncio.create_task(board.run(), name="monitor:status") if board is not None else None
    traced = asyncio.create_task(trace(memtrace), name="monitor:memtrace") if memtrace is not None else None
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in [*waiters, *([traced] if traced is not None else [])]:
            t.cancel()
        await asyncio.gather(*waiters, *([traced] if traced is not None else []), return_exceptions=True)
        await monitor.stop()
        if status is not None:  # after stop(): the streams' last lines are written
            status.cancel()
            await asyncio.gather(status, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return EXIT_OK


def _notes(scorer: Any) -> tuple[str, ...]:
    """The scorer's notes on its providers (``--fallback``): shown in the banner."""
    return tuple(getattr(scorer, "notes", ()) or ())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="samos real-time speech-quality monitor")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_command(PROG, run, args)


if __name__ == "__main__":
    sys.exit(main())
