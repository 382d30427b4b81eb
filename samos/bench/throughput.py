"""``samos bench throughput``: CPU cost and per-window latency of samos vs DNSMOS P.835 and Distill-MOS.

All three run side by side in one process on one CPU thread each, on the same real speech, each at its
own window length, one window per call (batch 1, the monitor's case):

* samos: the ONNX model (``--model``, default the embedded one) through ``samos.runtime.Scorer``
  (CPU provider, ``threads=1``), at its ``window_seconds`` from the file's metadata;
* samos_compact: the embedded compact student (``--model compact``), the same way;
* DNSMOS P.835: ``sig_bak_ovr.onnx`` from the ``speechmos`` package, run directly with onnxruntime
  (1 intra-op, 1 inter-op thread) on 9.01 s windows at 16 kHz (P.808 is not included);
* Distill-MOS: the ``distillmos`` package's torch model with ``torch.set_num_threads(1)`` on its own
  7.68 s windows at 16 kHz (``segmenting_in_forward=False``: one window per call).

Windows do not overlap (each model's cost per audio-second at hop = window; DNSMOS's own 1 s hop costs
9x more per audio-second). Resampling is done once beforehand and not timed. CPU time is
``time.process_time()`` of this process across the timed loop; latency is wall time per window.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samos.audio import SPEC_RATE, SSL_RATE, AudioError, load_audio, resample

DEFAULT_AUDIO = Path(__file__).resolve().parent.parent / "assets" / "demo_call_48k.flac"
"""Real speech bundled with the package (clips of the P.835 reference conditions, 48 kHz)."""
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a")
DNSMOS_WINDOW_S = 9.01
DISTILLMOS_WINDOW_S = 7.68
MODELS = ("samos", "samos_compact", "dnsmos", "distillmos")


class BenchError(ValueError):
    """A model that cannot be benchmarked here (package or model file missing)."""


@dataclass(frozen=True)
class Result:
    """One model's figures. ``audio_s_per_cpu_s``: audio seconds scored per CPU second (higher is cheaper)."""

    window_s: float
    windows: int
    audio_s: float
    cpu_s: float
    wall_s: float
    audio_s_per_cpu_s: float
    cpu_s_per_audio_s: float
    window_latency_ms_p50: float
    window_latency_ms_p95: float
    threads: int = 1
    runtime: str = ""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="the model of the 'samos' row: ONNX file or embedded name (default: default)"
    )
    p.add_argument(
        "--audio",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="speech files or folders (default: the bundled P.835 demo recording)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="wall-clock budget of the timed loops, split evenly over the models (default: 60)",
    )
    p.add_argument("--models", default=",".join(MODELS), help=f"which to run (default: {','.join(MODELS)})")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--out", type=Path, help="also write the JSON object to this file")


# ------------------------------------------------------------------------------------------- audio
def speech(paths: Sequence[Path] | None) -> np.ndarray:
    """The benchmark input: mono float32 at 48 kHz, all files concatenated."""
    files: list[Path] = []
    for p in paths or [DEFAULT_AUDIO]:
        files += (
            sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS) if p.is_dir() else [p]
        )
    if not files:
        raise AudioError("no audio files found for the benchmark")
    parts = []
    for f in files:
        a, sr = load_audio(f)
        parts.append(resample(a, sr, SPEC_RATE))
    return np.concatenate(parts)


def windows_of(audio48: np.ndarray, seconds: float, rate: int) -> list[np.ndarray]:
    """Non-overlapping windows of ``seconds`` at ``rate`` (looping the audio if it is shorter than one)."""
    a = audio48 if rate == SPEC_RATE else resample(audio48, SPEC_RATE, rate)
    n = int(round(seconds * rate))
    if len(a) < n:
        a = np.tile(a, int(np.ceil(n / len(a))))
    return [np.ascontiguousarray(a[i : i + n]) for i in range(0, len(a) - n + 1, n)]


# ------------------------------------------------------------------------------------------ models
Step = Callable[[int], None]
"""Scores window ``i`` (modulo the number of prepared windows)."""


def _samos(audio48: np.ndarray, model: str | Path | None) -> tuple[float, Step, str]:
    from samos.runtime import Scorer

    scorer = Scorer(model, providers=("cpu",), threads=1)
    window = scorer.info.window_seconds
    w48 = windows_of(audio48, window, SPEC_RATE)
    w16 = windows_of(audio48, window, SSL_RATE)
    n = min(len(w16), len(w48))
    batches = [(w16[i][None], w48[i][None]) for i in range(n)]

    def step(i: int) -> None:
        scorer.score(*batches[i % n])

    return window, step, f"onnxruntime {scorer.provider}, {scorer.path.name}"


def _dnsmos(audio48: np.ndarray) -> tuple[float, Step, str]:
    import importlib.util

    import onnxruntime as ort

    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("DNSMOS needs the package speechmos (pip install 'samos[bench]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "dnsmos_models" / "sig_bak_ovr.onnx"
    if not path.is_file():
        raise BenchError(f"DNSMOS model file missing: {path}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    wins = [w[None].astype(np.float32) for w in windows_of(audio48, DNSMOS_WINDOW_S, SSL_RATE)]

    def step(i: int) -> None:
        sess.run(None, {name: wins[i % len(wins)]})

    return DNSMOS_WINDOW_S, step, "onnxruntime cpu, speechmos sig_bak_ovr.onnx"


def _distillmos(audio48: np.ndarray) -> tuple[float, Step, str]:
    try:
        import torch
    except ImportError as e:
        raise BenchError("Distill-MOS needs torch (pip install 'samos[train]')") from e
    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel region
        torch.set_num_interop_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from distillmos import ConvTransformerSQAModel

            model = ConvTransformerSQAModel(segmenting_in_forward=False).eval()
    except ImportError as e:
        raise BenchError("Distill-MOS needs the package distillmos (pip install 'samos[train]')") from e
    wins = [torch.from_numpy(w)[None] for w in windows_of(audio48, DISTILLMOS_WINDOW_S, SSL_RATE)]

    def step(i: int) -> None:
        with torch.inference_mode():
            model(wins[i % len(wins)])

    return DISTILLMOS_WINDOW_S, step, f"torch {torch.__version__} cpu"


# ----------------------------------------------------------------------------------------- measure
def measure(step: Step, window_s: float, budget_s: float, min_windows: int = 3, runtime: str = "") -> Result:
    """Warm up once, then score windows until ``budget_s`` of wall time (at least ``min_windows``)."""
    step(0)
    lat: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    i = 1
    while len(lat) < min_windows or time.perf_counter() - wall0 < budget_s:
        t = time.perf_counter()
        step(i)
        lat.append(time.perf_counter() - t)
        i += 1
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    audio = len(lat) * window_s
    ms = np.asarray(lat) * 1e3
    return Result(
        window_s=window_s,
        windows=len(lat),
        audio_s=round(audio, 3),
        cpu_s=round(cpu, 4),
        wall_s=round(wall, 4),
        audio_s_per_cpu_s=round(audio / cpu, 3) if cpu > 0 else float("inf"),
        cpu_s_per_audio_s=round(cpu / audio, 5),
        window_latency_ms_p50=round(float(np.percentile(ms, 50)), 2),
        window_latency_ms_p95=round(float(np.percentile(ms, 95)), 2),
        runtime=runtime,
    )


def benchmark(
    names: Sequence[str], audio48: np.ndarray, budget_s: float, model: str | Path | None = None
) -> dict[str, dict[str, Any]]:
    """``{name: Result as dict}`` or ``{name: {"error": message}}`` for a model that cannot run here."""
    builders: dict[str, Callable[[], tuple[float, Step, str]]] = {
        "samos": lambda: _samos(audio48, model),
        "samos_compact": lambda: _samos(audio48, "compact"),
        "dnsmos": lambda: _dnsmos(audio48),
        "distillmos": lambda: _distillmos(audio48),
    }
    out: dict[str, dict[str, Any]] = {}
    per_model = budget_s / max(1, len(names))
    for name in names:
        try:
            window, step, runtime = builders[name]()
        except ValueError as e:  # BenchError, ModelFileError (e.g. no embedded model), AudioError
            out[name] = {"error": str(e)}
            continue
        out[name] = asdict(measure(step, window, per_model, runtime=runtime))
    return out


def table(models: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'model':<13} {'window s':>8} {'windows':>7} {'audio s/CPU s':>13} {'CPU s/audio s':>13} "
        f"{'p50 ms':>8} {'p95 ms':>8}  runtime"
    )
    lines = [head]
    for name, r in models.items():
        if "error" in r:
            lines.append(
                f"{name:<13} {'-':>8} {'-':>7} {'-':>13} {'-':>13} {'-':>8} {'-':>8}  error: {r['error']}"
            )
            continue
        lines.append(
            f"{name:<13} {r['window_s']:>8.2f} {r['windows']:>7d} {r['audio_s_per_cpu_s']:>13.1f} "
            f"{r['cpu_s_per_audio_s']:>13.4f} {r['window_latency_ms_p50']:>8.1f} "
            f"{r['window_latency_ms_p95']:>8.1f}  "
            f"{r['runtime']}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown or not names:
        print(
            f"samos bench throughput: unknown model(s) {unknown}; choose from {', '.join(MODELS)}",
            file=sys.stderr,
        )
        return 2
    if not args.seconds > 0:
        print("samos bench throughput: --seconds must be positive", file=sys.stderr)
        return 2
    try:
        audio48 = speech(args.audio)
    except AudioError as e:
        print(f"samos bench throughput: {e}", file=sys.stderr)
        return 2
    models = benchmark(names, audio48, args.seconds, args.model)
    import onnxruntime

    report = {
        "models": models,
        "input": {
            "seconds": round(len(audio48) / SPEC_RATE, 2),
            "files": [str(p) for p in (args.audio or [DEFAULT_AUDIO])],
        },
        "threads": 1,
        "budget_s": args.seconds,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
        },
    }
    text = json.dumps(report, indent=None if args.json else 2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text if args.json else table(models))
    return 0 if any("error" not in r for r in models.values()) else 1
