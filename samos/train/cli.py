"""``samos train --config configs/X.yaml [--out DIR] [--resume]``: run the steps a config describes."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from samos.config import ConfigError


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
        "--device", default=None, help="override the config's device (auto, cpu, cuda, cuda:1)"
    )


def run(args: argparse.Namespace) -> int:
    from samos.audio import AudioError
    from samos.train.config import load_train_config

    try:
        cfg = load_train_config(args.config, {"device": args.device} if args.device else None)
    except ConfigError as e:
        print(f"samos train: {e}", file=sys.stderr)
        return 2
    from samos.train.loop import run_training  # torch is imported only now

    out = args.out or Path("runs") / args.config.stem
    t0 = time.perf_counter()
    try:
        run_training(cfg, out, resume=args.resume)
    except (ValueError, AudioError) as e:  # TrainingError, ConfigError, CheckpointError, SSLWeightsError ...
        print(f"samos train: {e}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"done in {time.perf_counter() - t0:.1f} s: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samos.train", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
