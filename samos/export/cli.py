"""``samos export``: checkpoint -> ONNX model file (and an fp16 copy), with an optional parity check.

Exit status (see :mod:`samos.errors`): 0 written (and verified, with ``--verify``); 1 a failure at
run time: the parity check failed (the table of diffs is printed, the files are kept for
inspection), or the export, the fp16 conversion or the Triton repository failed; 2 a bad checkpoint
or argument.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from samos.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, one_line
from samos.runtime.modelinfo import Calibration

EXIT_PARITY = EXIT_FAILURE
"""The ONNX graph does not match the torch model."""
DEFAULT_WINDOW_SECONDS = 10.0
"""Used when the checkpoint records no training crop length (the paper trains on 10 s crops)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--checkpoint",
        type=Path,
        nargs="+",
        metavar="CKPT",
        help="checkpoint from `samos train`; several checkpoints of one config (e.g. one recipe, several "
        "seeds) export as one seed ensemble: the mean of their scores, the spectrogram and a frozen SSL "
        "encoder computed once (samos.model.ensemble)",
    )
    src.add_argument(
        "--from-onnx",
        type=Path,
        metavar="FILE",
        help="an exported whole-window model file (e.g. samos/models/default.onnx): write only its "
        "incremental pair next to it (or next to --out), rebuilt from the file's own weights",
    )
    p.add_argument(
        "--out", type=Path, help="ONNX file to write (e.g. model.onnx); required with --checkpoint"
    )
    p.add_argument(
        "--incremental",
        action="store_true",
        help="also write the incremental pair NAME.frames.onnx + NAME.head.onnx that the monitor uses "
        "for exact streaming (frame features once per hop; see docs/MONITOR.md)",
    )
    p.add_argument(
        "--int8",
        type=Path,
        metavar="CLIPS",
        help="also write NAME.frames.int8.onnx: the pair's frames graph (learned convolutions, weight "
        "matrices) in static int8, calibrated on real speech from this manifest or folder (not an "
        "evaluation set); the runtime uses it on CPU (needs --incremental or --from-onnx)",
    )
    p.add_argument(
        "--int8-clips", type=int, default=80, help="calibration clips taken from --int8 (default: 80)"
    )
    p.add_argument(
        "--int8-head",
        action="store_true",
        help="with --int8, also the head's transformer weight matrices (NAME.head.int8.onnx); check its "
        "accuracy on real speech first (scripts/int8_check.py); the default model ships one",
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        help="also write a half-precision copy next to --out (NAME.fp16.onnx; inputs/outputs stay float32)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="compare onnxruntime with torch on random and real audio; exit 1 on a mismatch",
    )
    p.add_argument(
        "--verify-audio",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="real speech for --verify (default: the bundled demo recording)",
    )
    p.add_argument(
        "--verify-seconds", default="0.5,3,10", help="input lengths for --verify (default: 0.5,3,10)"
    )
    p.add_argument("--verify-batches", default="1,3", help="batch sizes for --verify (default: 1,3)")
    p.add_argument(
        "--window-seconds",
        type=float,
        help="recommended scoring window written to the file (default: the checkpoint's training "
        f"crop, else {DEFAULT_WINDOW_SECONDS})",
    )
    p.add_argument(
        "--min-seconds",
        type=float,
        help="shortest input the model may score, written to the file (default: the shortest the graph "
        "accepts); shorter inputs get an error, not a score",
    )
    p.add_argument(
        "--calibration",
        metavar="SCALE,OFFSET",
        help="affine calibration mos' = SCALE*mos + OFFSET (default: the checkpoint's, else 1,0)",
    )
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch and the check (default: 1)")
    p.add_argument(
        "--triton",
        type=Path,
        metavar="DIR",
        help="also write a Triton Inference Server model repository here (DIR/samos/config.pbtxt, "
        "DIR/samos/1/model.onnx; see docs/SCALING.md)",
    )


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise ValueError(f"{what}: give at least one value")
    return vals


def _from_metadata(meta: dict[str, Any], *keys: str) -> Any:
    """First of ``keys`` found in the checkpoint metadata, also looking one level down (e.g. ``train``)."""
    for k in keys:
        if k in meta:
            return meta[k]
    for v in meta.values():
        if isinstance(v, dict):
            for k in keys:
                if k in v:
                    return v[k]
    return None


def _calibration(arg: str | None, meta: dict[str, Any]) -> tuple[Calibration, str]:
    if arg is not None:
        vals = _floats(arg, "--calibration")
        if len(vals) != 2:
            raise ValueError("--calibration takes SCALE,OFFSET")
        return Calibration(vals[0], vals[1]), "--calibration"
    cal = _from_metadata(meta, "calibration")
    if isinstance(cal, dict) and {"scale", "offset"} <= set(cal):
        return Calibration(float(cal["scale"]), float(cal["offset"])), "checkpoint"
    return Calibration(), "identity"


def _window(arg: float | None, meta: dict[str, Any]) -> tuple[float, str]:
    if arg is not None:
        if not arg > 0:
            raise ValueError("--window-seconds must be positive")
        return float(arg), "--window-seconds"
    w = _from_metadata(meta, "window_seconds", "crop_seconds")
    if isinstance(w, (int, float)) and w > 0:
        return float(w), "checkpoint"
    return DEFAULT_WINDOW_SECONDS, "default"


def _load(paths: list[Path]) -> tuple[Any, dict[str, Any]]:
    """The model of one checkpoint, or the seed ensemble of several, and the (first) checkpoint's
    metadata. Raises CheckpointError or ValueError (EnsembleError) for checkpoints that do not fit."""
    from samos.model.checkpoint import load_checkpoint
    from samos.model.ensemble import SAMOSEnsemble

    loaded = [load_checkpoint(p) for p in paths]
    model, meta = loaded[0]
    if len(loaded) == 1:
        return model, meta
    for p, (_, other) in zip(paths[1:], loaded[1:], strict=True):
        for what, keys in (("calibration", ("calibration",)), ("crop", ("window_seconds", "crop_seconds"))):
            if _from_metadata(other, *keys) != _from_metadata(meta, *keys):
                raise ValueError(
                    f"{p} was trained with another {what} than {paths[0]}: not members of one recipe"
                )
    return SAMOSEnsemble([m for m, _ in loaded]), meta


def run(args: argparse.Namespace) -> int:
    import torch

    from samos.export.onnx_export import ExportError, ExportSettings, export_onnx, save_fp16
    from samos.export.verify import verify_onnx
    from samos.model.checkpoint import CheckpointError

    torch.set_num_threads(max(1, args.threads))
    if args.from_onnx is not None:
        return _pair_from_onnx(args)
    if args.out is None:
        print("samos export: --out is required with --checkpoint", file=sys.stderr)
        return EXIT_USAGE
    try:
        seconds = _floats(args.verify_seconds, "--verify-seconds")
        batches = [int(b) for b in _floats(args.verify_batches, "--verify-batches")]
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        model, meta = _load(args.checkpoint)
        calibration, cal_src = _calibration(args.calibration, meta)
        window, win_src = _window(args.window_seconds, meta)
        if args.min_seconds is not None and not 0 < args.min_seconds <= window:
            raise ValueError(f"--min-seconds must be in (0, window {window} s], got {args.min_seconds}")
        settings = ExportSettings(
            window_seconds=window, calibration=calibration, min_seconds=args.min_seconds
        )
    except (CheckpointError, ValueError) as e:
        print(f"samos export: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    t0 = time.perf_counter()
    try:
        proto = export_onnx(model, args.out, settings)
    except (ExportError, OSError) as e:
        print(f"samos export: the export failed: {one_line(e)}", file=sys.stderr)
        return EXIT_FAILURE
    props = {p.key: p.value for p in proto.metadata_props}
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, "
        f"opset {max(o.version for o in proto.opset_import)}, "
        f"{time.perf_counter() - t0:.0f} s)"
    )
    print(
        f"  inputs {[i.name for i in proto.graph.input]}, window {window} s ({win_src}), "
        f"min {float(props['samos.min_seconds']):.3f} s, "
        f"calibration {json.loads(props['samos.calibration'])} ({cal_src})"
    )
    if args.int8 is not None and not args.incremental:
        print("samos export: --int8 quantises the incremental pair: add --incremental", file=sys.stderr)
        return EXIT_USAGE
    if args.incremental:
        status = _write_pair(model, args.out, props, args.int8, args.int8_clips, args.int8_head)
        if status != EXIT_OK:
            return status
    outputs = [(args.out, "fp32")]
    if args.fp16:
        half_path = args.out.with_name(args.out.stem + ".fp16.onnx")
        try:
            save_fp16(proto, half_path)
        except ExportError as e:
            print(f"samos export: fp16 conversion failed: {one_line(e)}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"wrote {half_path} ({half_path.stat().st_size / 1e6:.1f} MB, fp16)")
        outputs.append((half_path, "fp16"))
    if args.triton is not None:
        from samos.export.triton import TritonExportError, write_repository

        try:
            folder = write_repository(args.out, args.triton)
        except (TritonExportError, OSError) as e:
            print(f"samos export: Triton repository: {one_line(e)}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"wrote Triton model repository {args.triton} ({folder / 'config.pbtxt'})")
    if not args.verify:
        return EXIT_OK
    status = EXIT_OK
    for path, precision in outputs:
        try:
            report = verify_onnx(
                model,
                path,
                precision=precision,
                seconds=seconds,
                batches=batches,
                audio_files=args.verify_audio,
                threads=max(1, args.threads),
            )
        except (ValueError, OSError) as e:  # unreadable --verify-audio
            print(f"samos export: verification could not run: {one_line(e)}", file=sys.stderr)
            return EXIT_USAGE
        print(report.table(), file=sys.stdout if report.ok else sys.stderr)
        if not report.ok:
            status = EXIT_PARITY
    if status != EXIT_OK:
        print(
            "samos export: PARITY CHECK FAILED: the ONNX graph does not match the torch model",
            file=sys.stderr,
        )
    return status


def _write_pair(
    model: Any,
    out: Path,
    props: dict[str, str],
    int8: Path | None = None,
    int8_clips: int = 80,
    int8_head: bool = False,
) -> int:
    from samos.export.incremental import export_pair
    from samos.export.onnx_export import ExportError
    from samos.export.quantize import QuantizeError, clips_from, quantize_pair

    try:
        clips = clips_from(int8, int8_clips) if int8 is not None else []  # bad input before the work
    except QuantizeError as e:
        print(f"samos export: --int8: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    t0 = time.perf_counter()
    try:
        frames, head = export_pair(model, out, props)
    except (ExportError, OSError) as e:
        print(f"samos export: the incremental pair failed: {one_line(e)}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"wrote {frames} and {head} (incremental pair, {time.perf_counter() - t0:.0f} s)")
    if int8 is None:
        return EXIT_OK
    t0 = time.perf_counter()
    try:
        result = quantize_pair(out, clips, head=int8_head)
    except (QuantizeError, ValueError, OSError) as e:
        print(f"samos export: int8 pair: {one_line(e)}", file=sys.stderr)
        return EXIT_FAILURE
    head = f" and {result.head} ({result.head_nodes} nodes)" if result.head else " (the head stays float32)"
    print(
        f"wrote {result.frames} ({result.frame_nodes} nodes){head} in static int8, calibrated on "
        f"{result.clips} clips of {int8} ({time.perf_counter() - t0:.0f} s)"
    )
    return EXIT_OK


def _pair_from_onnx(args: argparse.Namespace) -> int:
    from samos.export.from_onnx import model_from_onnx
    from samos.export.onnx_export import ExportError

    src: Path = args.from_onnx
    given = [
        f
        for f, v in (
            ("--fp16", args.fp16),
            ("--verify", args.verify),
            ("--triton", args.triton),
            ("--calibration", args.calibration),
            ("--window-seconds", args.window_seconds),
            ("--min-seconds", args.min_seconds),
        )
        if v
    ]
    if given:
        print(
            "samos export: --from-onnx writes only the incremental pair; "
            f"{', '.join(given)} need --checkpoint",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not src.is_file():
        print(f"samos export: --from-onnx {src}: no such file", file=sys.stderr)
        return EXIT_USAGE
    try:
        model, props = model_from_onnx(src)
    except ExportError as e:
        print(f"samos export: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    return _write_pair(model, args.out or src, props, args.int8, args.int8_clips, args.int8_head)
