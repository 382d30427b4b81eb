"""The ``samos`` command: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
only the chosen one is imported, so ``samos monitor`` and ``samos score`` never import torch.
Every subcommand has ``-v`` / ``--verbose`` and follows :mod:`samos.errors` (one-line messages,
exit 2 for usage errors, 1 for failures at run time, a traceback only with ``-v``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from samos import __version__
from samos.bench.cli import BENCHES  # a light module: the benchmarks themselves load on demand
from samos.errors import EXIT_USAGE, report, run_command

# name -> (module, one-line help). Modules are imported only when their subcommand runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("samos.train.cli", "train a model (pre-train and/or fine-tune) from a YAML config"),
    "eval": ("samos.train.evaluate", "evaluate a checkpoint or ONNX model on a rated manifest"),
    "export": ("samos.export.cli", "export a checkpoint to ONNX (and a Triton repository)"),
    "score": ("samos.runtime.score_cli", "score audio files, folders or manifests with an ONNX model"),
    "monitor": ("samos.monitor.cli", "run the real-time monitor (sound card, WebRTC, files)"),
    "bench": ("samos.bench.cli", f"benchmarks: {', '.join(BENCHES)}"),
    "data": ("samos.data.cli", "data tools: simulate a rated corpus, inspect manifests"),
    "serve": ("samos.serve.cli", "serve the ONNX model as a Ray Serve deployment"),
}


def _load(module: str):  # noqa: ANN202
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = e.name or str(e)
        extra = {"torch": "train", "torchaudio": "train", "onnxruntime": "cpu", "aiortc": "webrtc",
                 "websockets": "monitor", "aiohttp": "monitor", "sounddevice": "monitor", "ray": "serve"}
        hint = next((f" (pip install 'samos[{x}]')" for k, x in extra.items() if missing.startswith(k)), "")
        message = f"this command needs the package '{missing}'{hint}"
        raise SystemExit(report("samos", message, EXIT_USAGE)) from None


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samos", description="samos: real-time speech-quality monitor")
    parser.add_argument("--version", action="version", version=f"samos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = _load(module)
            mod.add_arguments(p)
            if "--verbose" not in p._option_string_actions:
                p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors, more log")
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    return run_command(f"samos {args.command}", args._run, args)


if __name__ == "__main__":
    sys.exit(main())
