"""``samos train --config configs/X.yaml [--out DIR] [--resume]``: run the steps a config describes."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from samos.config import ConfigError
from samos.errors import EXIT_FAILURE, EXIT_USAGE, one_line, report, run_command

PROG = "samos train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="training YAML (see configs/paper.yaml)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder (checkpoints, metrics, plots); default runs/<config name>",
    )
    parser.add_argument("--resume", action="store_true", help="continue from <out>/<step>/last.pt")
    parser.add_argument(
        "--device", default=None, help="override the config's device: auto, cpu, cuda or cuda:N"
    )


def run(args: argparse.Namespace) -> int:
    from samos.audio import AudioError
    from samos.train.config import load_train_config

    try:
        cfg = load_train_config(args.config, {"device": args.device} if args.device else None)
    except ConfigError as e:
        return report(PROG, one_line(e), EXIT_USAGE)
    from samos.train.loop import run_training  # torch is imported only now

    out = args.out or Path("runs") / args.config.stem
    t0 = time.perf_counter()
    try:
        run_training(cfg, out, resume=args.resume)
    except ConfigError as e:  # e.g. a CUDA device on a machine without one
        return report(PROG, one_line(e), EXIT_USAGE)
    except (ValueError, AudioError) as e:  # TrainingError, CheckpointError, SSLWeightsError ...
        return report(PROG, one_line(e), EXIT_FAILURE)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"done in {time.perf_counter() - t0:.1f} s: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samos.train", description=__doc__)
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return run_command(PROG, run, parser.parse_args(argv))
