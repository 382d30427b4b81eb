"""``samos data``: ``simulate`` a rated 48 kHz corpus, ``info`` on a manifest, ``labelcheck`` the
pseudo-labels against the human P.835 ratings, ``relabel`` a manifest with a model's scores
(distillation labels)."""

from __future__ import annotations

import argparse
import json
import sys

from samos.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    sim = sub.add_parser("simulate", help="build a synthetic 48 kHz corpus with pseudo-MOS labels")
    sim.add_argument("--config", default=None, help="simulate YAML (default: built-in defaults)")
    sim.add_argument("--out", required=True, help="output folder (resumable: finished clips are kept)")
    sim.add_argument("--workers", type=int, default=1, help="processes (each loads its own teacher)")
    sim.add_argument("--clips", type=int, default=None, help="override the config's number of clips")
    info = sub.add_parser("info", help="summarise a manifest (counts, label histogram, missing files)")
    info.add_argument("manifest")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    chk = sub.add_parser("labelcheck", help="agreement of the label sources with the P.835 ratings, and cost")
    chk.add_argument("--p835", default="/work/shared/data/p835", help="the P.835 folder")
    chk.add_argument(
        "--visqol", type=int, default=0, help="also run ViSQOL (48 kHz audio mode) on N fb48k files"
    )
    chk.add_argument("--out", default=None, help="write the per-file scores (CSV) here")
    rel = sub.add_parser(
        "relabel", help="a manifest's clips scored by a model, as a new manifest (distillation labels)"
    )
    rel.add_argument("manifest", help="the manifest to relabel (any format samos reads)")
    rel.add_argument("--out", required=True, help="the relabelled manifest (generic CSV) to write")
    rel.add_argument("--model", default=None, help="ONNX model, or an embedded model (default: default)")
    rel.add_argument("--format", default="auto", help="the input manifest's format (default: auto)")
    rel.add_argument("--threads", type=int, default=None, help="CPU threads (default: all usable cores)")
    rel.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        if args.data_command == "simulate":
            return _simulate(args)
        if args.data_command == "relabel":
            return _relabel(args)
        if args.data_command == "info":
            from samos.data.simulate.corpus import format_summary, summarise

            s = summarise(args.manifest)
            print(json.dumps(s, indent=1) if args.json else format_summary(s))
            return 0
        from samos.data.simulate.labelcheck import check_p835

        print(check_p835(args.p835, visqol_files=args.visqol, out_csv=args.out))
        return 0
    except (ValueError, ConfigError) as e:  # Source-, Manifest-, Audio-, ModelFileError are ValueErrors
        print(f"samos data {args.data_command}: {e}", file=sys.stderr)
        return 2


def _simulate(args: argparse.Namespace) -> int:
    import dataclasses

    from samos.data.simulate.config import load_simulate_config
    from samos.data.simulate.corpus import simulate

    cfg = load_simulate_config(args.config)
    if args.clips is not None:
        if args.clips < 1:
            raise ConfigError(f"--clips must be >= 1, got {args.clips}")
        cfg = dataclasses.replace(cfg, clips=args.clips)
    result = simulate(cfg, args.out, workers=args.workers)
    print(
        f"{result.manifest} ({result.clips} clips: {result.made} made, {result.skipped} kept, "
        f"{result.wall_s:.0f} s)"
    )
    return 0


def _relabel(args: argparse.Namespace) -> int:
    from samos.data.manifest import read_manifest
    from samos.data.relabel import relabel
    from samos.progress import progress
    from samos.runtime.scorer import Scorer

    manifest = read_manifest(args.manifest, format=args.format)
    if not len(manifest):
        raise ValueError(f"{args.manifest}: no usable rows ({manifest.report.summary()})")
    scorer = Scorer(args.model, threads=args.threads)
    with progress(total=len(manifest), unit="clip", disable=args.quiet) as bar:
        result = relabel(manifest, scorer, args.out, on_clip=lambda: bar.update(1))
    skipped = f"\n{result.skipped.summary()}" if result.skipped else ""
    print(f"{result.out}: {result.kept} of {len(manifest)} clips labelled by {scorer.path.name}{skipped}")
    return 0
