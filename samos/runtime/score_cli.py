"""``samos score``: score audio files, folders, CSV manifests or a list on stdin. Torch-free.

One output row per input, in input order, with at least ``path``, ``mos``, ``mos_std``; an input that
cannot be read or scored gets a row with its ``error`` instead of stopping the run.

Files are windowed, resampled and gated exactly as the live monitor does it (one implementation,
:mod:`samos.runtime.windows`), with its defaults (4 s windows every 1 s): a file's ``mos`` is the mean
of its scored windows, and ``--windows`` gives each window's ``status`` (``ok``, ``silence``,
``no_speech``) as the monitor publishes it. A file whose every window was gated gets no MOS, and its
own ``status`` says why (``no_speech`` or ``silence``); the summary line counts such files apart.

Exit status (see :mod:`samos.errors`): 0 when every input was read and windowed (with a MOS or a
status that says why not); 1 when any input failed (it still has its error row, and the summary line
on stderr counts the failures); 2 for a bad command line, manifest, model file or execution provider.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from samos.audio import AudioError, load_audio
from samos.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, one_line
from samos.monitor.schema import clean
from samos.progress import progress
from samos.runtime.longfile import LONG_SECONDS, duration_seconds, score_file_streaming
from samos.runtime.modelinfo import ModelFileError
from samos.runtime.providers import add_provider_arguments, parse_providers
from samos.runtime.scorer import Scorer
from samos.runtime.windows import FileScore, score_many

AUDIO_EXTENSIONS = frozenset(
    ".wav .flac .ogg .oga .opus .mp3 .m4a .aac .aif .aiff .aifc .au .snd .caf .w64 .wma".split()
    + ".webm .mka .mkv .mp4".split()
)
EXIT_FAILED_INPUTS = EXIT_FAILURE
PRECISION = 4
"""Decimals written for MOS values."""


class InputError(ValueError):
    """An input list, folder or manifest that cannot be used."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="audio files, folders (searched recursively for audio files) or '-' (paths on stdin)",
    )
    p.add_argument("--csv", type=Path, metavar="M", help="CSV manifest whose rows name the files to score")
    p.add_argument(
        "--root", type=Path, help="folder that manifest paths are relative to (default: the manifest's)"
    )
    p.add_argument("--column", default="path", help="manifest column holding the paths (default: path)")
    p.add_argument(
        "--model", help="ONNX model from `samos export`, or an embedded model: default (the default), compact"
    )
    p.add_argument(
        "--out", type=Path, metavar="F", help="write results to F.csv or F.jsonl (default: CSV on stdout)"
    )
    p.add_argument(
        "--format", choices=("csv", "jsonl"), help="output format (default: from --out's suffix, else csv)"
    )
    p.add_argument(
        "--windows",
        action="store_true",
        help="also write per-window results with the monitor's status and diagnostics (CSV: extra rows "
        "with a window index; JSONL: a 'windows' field)",
    )
    p.add_argument("--window-seconds", type=float, help="scoring window (default: the monitor's, 4 s)")
    p.add_argument("--hop-seconds", type=float, help="hop between windows (default: the monitor's, 1 s)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per inference batch (default: 16)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all usable cores)")
    add_provider_arguments(p, default="auto")
    p.add_argument("--trt-cache", type=Path, help="folder for TensorRT engine/timing caches")
    p.add_argument(
        "--no-int8",
        action="store_true",
        help="run the model's float32 frames graph even where it ships a static-int8 one (CPU)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="say which model and provider run; tracebacks on errors"
    )


# ------------------------------------------------------------------------------------------- inputs
def _walk(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def _from_manifest(path: Path, root: Path | None, column: str) -> list[Path]:
    if not path.is_file():
        raise InputError(f"{path}: no such manifest")
    root = root if root is not None else path.parent
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise InputError(
                f"{path}: no column {column!r} (columns: {', '.join(reader.fieldnames or [])}); "
                "choose one with --column"
            )
        rows = [(r.get(column) or "").strip() for r in reader]
    return [Path(r) if Path(r).is_absolute() else root / r for r in rows if r]


def collect_inputs(
    inputs: Sequence[str],
    manifest: Path | None = None,
    root: Path | None = None,
    column: str = "path",
    stdin: IO[str] | None = None,
) -> list[Path]:
    """The files to score, in order: each INPUT (file, folder walked recursively, '-' = paths on stdin),
    then the manifest's rows. Files that do not exist are kept: they get an error row."""
    out: list[Path] = []
    for item in inputs:
        if item == "-":
            lines = (stdin or sys.stdin).read().splitlines()
            out += [Path(line.strip()) for line in lines if line.strip()]
            continue
        p = Path(item)
        out += _walk(p) if p.is_dir() else [p]
    if manifest is not None:
        out += _from_manifest(manifest, root, column)
    return out


# ------------------------------------------------------------------------------------------ outputs
@dataclass
class _Writer:
    """Rows as the module doc says. A file's ``status`` is ``ok`` when it has a MOS; one whose windows
    were all gated has an empty ``mos``, ``scored_windows`` 0 and the reason as its ``status``
    (``no_speech``, ``silence``); an unreadable one ``error`` and its ``error`` text. Per window:
    ``status`` as the monitor gives it, and in JSONL its ``diagnostics``."""

    stream: IO[str]
    fmt: str
    windows: bool

    def __post_init__(self) -> None:
        self._csv: Any = None
        if self.fmt == "csv":
            cols = ["path", "mos", "mos_std", "status", "seconds", "n_windows", "scored_windows", "error"]
            if self.windows:
                cols[1:1] = ["window", "start_s", "end_s"]
            self._csv = csv.DictWriter(self.stream, fieldnames=cols, lineterminator="\n")
            self._csv.writeheader()

    def write(self, path: Path, result: FileScore | AudioError) -> None:
        if isinstance(result, AudioError):
            row: dict[str, Any] = {
                "path": str(path),
                "mos": None,
                "mos_std": None,
                "status": "error",
                "error": _error_text(result, path),
            }
            if self.fmt == "csv":
                self._csv.writerow({k: ("" if v is None else v) for k, v in row.items()})
            else:
                self.stream.write(json.dumps(row) + "\n")
            return
        row = {
            "path": str(path),
            "mos": _round(result.mos, PRECISION),
            "mos_std": _round(result.std, PRECISION),
            "status": result.status,
            "seconds": round(result.seconds, 3),
            "n_windows": len(result.windows),
            "scored_windows": result.scored,
        }
        wins = [
            {
                "start_s": round(w.start_s, 3),
                "end_s": round(w.end_s, 3),
                "status": w.status,
                "mos": _round(w.mos, PRECISION),
                "mos_std": _round(w.std, PRECISION),
            }
            for w in result.windows
        ]
        if self.fmt == "jsonl":
            row["statuses"] = result.statuses()
            if self.windows:
                row["windows"] = [
                    {**w, "diagnostics": clean(x.diagnostics)}
                    for w, x in zip(wins, result.windows, strict=True)
                ]
            self.stream.write(json.dumps(row) + "\n")
            return
        self._csv.writerow({k: ("" if v is None else v) for k, v in row.items()})
        if self.windows:
            for i, w in enumerate(wins):
                self._csv.writerow(
                    {"path": str(path), "window": i, **{k: ("" if v is None else v) for k, v in w.items()}}
                )


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def _error_text(e: AudioError, path: Path) -> str:
    msg = str(e)
    prefix = f"{path}: "
    return msg[len(prefix) :] if msg.startswith(prefix) else msg


def _load_items(
    paths: Sequence[Path], long_file: Callable[[Path], FileScore] | None = None
) -> Iterator[tuple[Any, int] | FileScore | AudioError]:
    """Each path's audio; files longer than LONG_SECONDS go to ``long_file`` (bounded memory)."""
    for p in paths:
        try:
            if long_file is not None and (duration_seconds(p) or 0.0) > LONG_SECONDS:
                yield long_file(p)
                continue
            yield load_audio(p)
        except AudioError as e:
            yield e
        except Exception as e:  # noqa: BLE001 - any decoder failure is this file's error row
            yield AudioError(f"{p}: cannot decode ({type(e).__name__}: {e})")


# ---------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    try:
        if args.batch_size < 1:
            raise InputError("--batch-size must be >= 1")
        paths = collect_inputs(args.inputs, args.csv, args.root, args.column)
        if not paths:
            raise InputError("nothing to score: give files, folders, '-' (paths on stdin) or --csv")
        fmt = args.format or (
            "jsonl" if args.out is not None and args.out.suffix.lower() in (".jsonl", ".json") else "csv"
        )
        scorer = Scorer(
            args.model,
            providers=parse_providers(args.providers),
            fallback=args.fallback,
            threads=args.threads,
            trt_cache_dir=args.trt_cache,
            max_batch=max(args.batch_size, 1),
            int8=not args.no_int8,
        )
    except (ValueError, OSError) as e:  # InputError, ModelFileError, provider names/availability, manifest
        kind = ""
        if isinstance(e, (ModelFileError, InputError)):
            kind = "model error: " if isinstance(e, ModelFileError) else "input error: "
        print(f"samos score: {kind}{one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    for note in scorer.notes:
        print(f"samos score: note: {note}", file=sys.stderr)
    if args.verbose:
        print(f"samos score: {describe_scorer(scorer)}", file=sys.stderr)

    out_stream: IO[str] = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
    n_ok = n_err = 0
    unscored: dict[str, int] = {}
    audio_s = 0.0
    t0 = time.perf_counter()
    try:
        writer = _Writer(out_stream, fmt, args.windows)

        def long_file(p: Path) -> FileScore:
            return score_file_streaming(scorer, p, args.window_seconds, args.hop_seconds, args.batch_size)

        results = score_many(
            scorer, _load_items(paths, long_file), args.window_seconds, args.hop_seconds, args.batch_size
        )
        with progress(total=len(paths), unit="file", disable=args.quiet) as bar:
            for path, result in zip(paths, results, strict=True):
                writer.write(path, result)
                if isinstance(result, AudioError):
                    n_err += 1
                else:
                    n_ok += 1
                    audio_s += result.seconds
                    if result.mos is None:
                        unscored[result.status] = unscored.get(result.status, 0) + 1
                bar.update(1)
    except ValueError as e:  # bad --window-seconds / --hop-seconds
        print(f"samos score: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if args.out:
            out_stream.close()
        else:
            out_stream.flush()
    wall = time.perf_counter() - t0
    speed = f", {audio_s / wall:.1f}x real time" if wall > 0 and audio_s else ""
    n_unscored = sum(unscored.values())
    why = ", ".join(f"{n} {k}" for k, n in sorted(unscored.items()))
    no_mos = f", {n_unscored} without a MOS (status {why})" if n_unscored else ""
    print(
        f"samos score: {n_ok - n_unscored} scored{no_mos}, {n_err} failed, {audio_s:.1f} s of audio in "
        f"{wall:.1f} s{speed} "
        f"on {scorer.provider} ({scorer.threads} threads)" + (f" -> {args.out}" if args.out else ""),
        file=sys.stderr,
    )
    return EXIT_FAILED_INPUTS if n_err else EXIT_OK


def _int8_note(scorer: Scorer) -> str:
    return f" (int8 {'+'.join(scorer.int8_graphs)})" if scorer.frames_int8 else ""


def describe_scorer(scorer: Scorer) -> str:
    """One line: the model, its version and window, the provider that runs it and how it was chosen."""
    how = "auto: what is installed" if scorer.auto else "asked: " + ",".join(scorer.requested)
    return (
        f"model {scorer.path} (version {scorer.info.version}, window {scorer.info.window_seconds:g} s) "
        f"on {scorer.provider} ({how}; onnxruntime session: {', '.join(scorer.providers)}), "
        f"{scorer.threads} threads" + (f", incremental pair{_int8_note(scorer)}" if scorer.pair else "")
    )
