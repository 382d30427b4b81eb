"""``samos bench``: dispatch to ``throughput``, ``stream``, ``accuracy``, ``windows``, ``soak``, ``vad`` or
``loss``.

Each benchmark is a module exposing ``add_arguments(parser)`` and ``run(args) -> int``; only the chosen
one is imported (the accuracy benchmark needs torch, the others do not), and its own arguments are
parsed after it is loaded.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

BENCHES: dict[str, tuple[str, str]] = {
    "throughput": (
        "samos.bench.throughput",
        "audio-seconds scored per CPU-second and per-window latency, vs peers",
    ),
    "stream": ("samos.bench.stream", "the monitor under load: many live streams, latency and drops"),
    "accuracy": ("samos.bench.accuracy", "agreement with human ratings, vs peers"),
    "soak": ("samos.bench.soak", "the monitor on loopback: WebRTC publishers x websocket subscribers"),
    "windows": (
        "samos.bench.windows",
        "monitor window and hop: accuracy on changing calls against latency and CPU",
    ),
    "vad": ("samos.bench.vad", "the monitor's speech gate on speech in noise, noise alone and silence"),
    "loss": (
        "samos.bench.loss",
        "live MOS of WebRTC publishers whose RTP packets are lost, random and in bursts",
    ),
}
EXIT_USAGE = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, (_, help_text) in BENCHES.items():
        # Everything after the benchmark's name (options included) is passed through untouched and
        # parsed by the benchmark's own parser in run(): a prefix character no option uses makes
        # argparse treat "--json" and friends as plain strings here.
        sp = sub.add_parser(name, help=help_text, add_help=False, prefix_chars="\x00")
        sp.add_argument("bench_args", nargs="*", help=argparse.SUPPRESS)


def _load(name: str) -> ModuleType | None:
    module = BENCHES[name][0]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        if e.name == module:
            print(
                f"samos bench: the '{name}' benchmark is not part of this installation ({module} is missing)",
                file=sys.stderr,
            )
        else:
            print(
                f"samos bench {name}: needs the package '{e.name}' (pip install 'samos[bench]')",
                file=sys.stderr,
            )
        return None
    if not (hasattr(mod, "add_arguments") and hasattr(mod, "run")):
        print(f"samos bench: {module} does not define add_arguments() and run()", file=sys.stderr)
        return None
    return mod


def run(args: argparse.Namespace) -> int:
    mod = _load(args.bench)
    if mod is None:
        return EXIT_USAGE
    parser = argparse.ArgumentParser(prog=f"samos bench {args.bench}", description=BENCHES[args.bench][1])
    mod.add_arguments(parser)
    return int(mod.run(parser.parse_args(args.bench_args)) or 0)
