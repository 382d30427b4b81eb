"""``samos bench windows``: the monitor's window and hop, as measured accuracy against latency and cost.

A live call changes quality while it is scored. To measure that, the human-rated P.835 clips of each
set are shuffled (seeded) and joined into one long "call" per set and model, so the quality changes at
every clip boundary (about every 4.6 s). Windows of each length are cut from the calls as the monitor
cuts them; a window's target is the overlap-weighted mean of the human MOS of the clips it covers.
Windows the monitor would not score (its speech gate: status ``silence`` or ``no_speech``) are left
out and counted.

Windows are scored by models that never trained on the clips they score:

* ``--folds DIR``: the fold models of a ``samos bench accuracy`` run (its ``--workdir``, variant
  folder ``samos-<id>``): each ``foldK/final.pt`` scores the clips missing from its ``foldK/train.csv``
  (needs torch: ``pip install 'samos[train]'``);
* ``--model M.onnx``: one ONNX model for every clip. Only meaningful for a model that did not train
  on P.835 (for example a step-1 export); the embedded default did, so it is refused.

Cost is measured separately, on one CPU thread with onnxruntime and the embedded model (or
``--cost-model``): CPU ms per window, hence CPU-s per stream-second = cost per window / hop.
Latency: a window is scored when its last sample arrives, so a change of quality is wholly inside a
published score after at most ``window + hop`` seconds of audio plus the compute time
(``change_to_score_s``); a score is published every ``hop`` seconds.

Output: a table, or with ``--json`` one object
``{"windows": {W: {"accuracy": {SET: {"pcc", "srcc", "rmse", "n"}}, "scored_fraction", "cpu_ms_per_window",
"hops": {H: {"cpu_s_per_stream_s", "change_to_score_s"}}}}, "models": ..., "seconds": ...}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from samos.audio import RATE_RATIO, SSL_RATE, load_audio, model_input
from samos.bench.cv import SETS, Clip, load_p835
from samos.monitor.config import WindowConfig
from samos.monitor.normalise import Segment
from samos.monitor.stream import StreamProcessor
from samos.train import metrics

DEFAULT_P835 = "/work/shared/data/p835"
POOLED = "pooled"
DEFAULT_WINDOWS = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
DEFAULT_HOPS = (0.25, 0.5, 1.0, 2.0)
MAX_BATCH = 16

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(wave16 [B, T], wave48 [B, 3T]) -> MOS [B]``."""


class BenchError(ValueError):
    """Bad arguments or inputs of the windows benchmark (reported as one line, exit status 2)."""


@dataclass(frozen=True)
class Call:
    """Rated clips of one set joined end to end: ``wave16 [T]``, ``wave48 [3T]``, and per 16 kHz sample
    the human MOS of the clip it belongs to (``label16 [T]``). ``model``: the key of the model that
    scores it; ``rate``: the clips' native rate (Hz)."""

    set: str
    model: str
    wave16: np.ndarray
    wave48: np.ndarray
    label16: np.ndarray
    rate: int


def join_clips(clips: Sequence[Clip], set_name: str, model: str, seed: int) -> Call:
    """The clips in a seeded random order as one call (each resampled to the model rates on its own)."""
    order = np.random.default_rng(seed).permutation(len(clips))
    w16, w48, lab = [], [], []
    rate = 0
    for i in order:
        audio, sr = load_audio(clips[i].path)
        mi = model_input(audio, sr)
        rate = max(rate, sr)
        w16.append(mi.wave16)
        w48.append(mi.wave48)
        lab.append(np.full(len(mi.wave16), clips[i].label, dtype=np.float64))
    return Call(set_name, model, np.concatenate(w16), np.concatenate(w48), np.concatenate(lab), rate)


def window_starts(n: int, size: int, step: int) -> np.ndarray:
    """Start samples of every full window of ``size`` every ``step`` samples in ``n`` samples."""
    if n < size:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n - size + 1, step, dtype=np.int64)


def window_targets(label16: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """Overlap-weighted mean label of each window ``[start, start + size)``: ``[len(starts)]``."""
    cs = np.concatenate([[0.0], np.cumsum(label16)])
    return (cs[starts + size] - cs[starts]) / size


@dataclass(frozen=True)
class WindowResult:
    """Every window of one length: predictions, targets, sets, and how many the VAD left out."""

    pred: np.ndarray
    target: np.ndarray
    sets: np.ndarray
    cut: int


def score_windows(
    calls: Sequence[Call],
    scorers: dict[str, ScoreFn],
    seconds: float,
    step_s: float,
    gate: WindowConfig | None = None,
) -> WindowResult:
    """Cut each call into ``seconds`` windows every ``step_s`` seconds and score those the monitor would:
    the windows and their statuses come from the monitor's own path
    (:class:`~samos.monitor.stream.StreamProcessor`), with ``gate`` (default: the monitor's window
    settings) for everything but the window and hop."""
    size = round(seconds * SSL_RATE)
    base = gate or WindowConfig()
    cfg = replace(base, window_seconds=seconds, hop_seconds=step_s, min_final_seconds=seconds)
    pred: list[np.ndarray] = []
    target: list[np.ndarray] = []
    sets: list[str] = []
    cut = 0
    for call in calls:
        proc = StreamProcessor(call.rate, cfg)
        seg = Segment(call.wave16, call.wave48, 0.0, 0.0, call.rate)
        pending = [p for p in proc.push_normalised(seg, final=True) if len(p.window.wave16) == size]
        ok = [p.window.start for p in pending if p.status == "ok"]
        cut += len(pending) - len(ok)
        starts = np.asarray(ok, dtype=np.int64)
        score = scorers[call.model]
        for b in range(0, len(starts), MAX_BATCH):
            chunk = starts[b : b + MAX_BATCH]
            w16 = np.stack([call.wave16[s : s + size] for s in chunk])
            w48 = np.stack([call.wave48[s * RATE_RATIO : (s + size) * RATE_RATIO] for s in chunk])
            pred.append(np.asarray(score(w16, w48), dtype=np.float64))
        target.append(window_targets(call.label16, starts, size))
        sets.extend([call.set] * len(starts))
    empty = np.zeros(0)
    return WindowResult(
        np.concatenate(pred) if pred else empty,
        np.concatenate(target) if target else empty,
        np.array(sets),
        cut,
    )


def accuracy(res: WindowResult) -> dict[str, dict[str, float]]:
    """PCC, SRCC, RMSE and n of the windows, per set and pooled."""
    out: dict[str, dict[str, float]] = {}
    for name in [*sorted(set(res.sets.tolist())), POOLED]:
        m = np.ones(len(res.sets), bool) if name == POOLED else res.sets == name
        a = metrics.agreement(res.pred[m], res.target[m])
        out[name] = {"pcc": round(a.pcc, 4), "srcc": round(a.srcc, 4), "rmse": round(a.rmse, 4), "n": a.n}
    return out


# ------------------------------------------------------------------------------------------- models
def fold_scorers(folds_dir: Path, clips: Sequence[Clip]) -> tuple[dict[str, ScoreFn], dict[str, list[Clip]]]:
    """One torch scorer per ``foldK/final.pt`` in ``folds_dir`` and the clips it never trained on."""
    try:
        import torch

        from samos.model.checkpoint import load_checkpoint
    except ImportError as e:
        raise BenchError(f"--folds needs torch (pip install 'samos[train]'): {e}") from None
    fold_dirs = sorted(p.parent for p in folds_dir.glob("fold*/final.pt"))
    if not fold_dirs:
        raise BenchError(
            f"{folds_dir}: no fold*/final.pt (the --workdir variant folder of samos bench accuracy)"
        )
    scorers: dict[str, ScoreFn] = {}
    held: dict[str, list[Clip]] = {}
    for d in fold_dirs:
        with open(d / "train.csv", newline="") as f:
            trained = {str(Path(r["path"]).resolve()) for r in csv.DictReader(f)}
        held[d.name] = [c for c in clips if str(c.path.resolve()) not in trained]
        model, _ = load_checkpoint(d / "final.pt")
        model.eval()

        def score(w16: np.ndarray, w48: np.ndarray, model: Any = model) -> np.ndarray:
            with torch.no_grad():
                wave48 = torch.from_numpy(w48) if model.spec_encoder is not None else None
                mean, _ = model(torch.from_numpy(w16), wave48)
            return mean.numpy()

        scorers[d.name] = score
    covered = {str(c.path) for cs in held.values() for c in cs}
    if len(covered) < len(clips):
        print(
            f"[windows] note: {len(clips) - len(covered)} clips are held out by no fold and not scored",
            file=sys.stderr,
        )
    return scorers, held


def onnx_scorer(path: Path) -> ScoreFn:
    """A CPU onnxruntime scorer of one model file that must not have trained on P.835 (the embedded
    default did, so it is refused; for any other file that is the caller's word)."""
    from samos.runtime import Scorer
    from samos.runtime.scorer import resolve_model_path

    try:
        default = resolve_model_path(None).resolve()
    except ValueError:
        default = None
    if default is not None and path.resolve() == default:
        raise BenchError(f"{path}: the embedded default trained on P.835; its windows would be training data")
    scorer = Scorer(path, providers=("cpu",))

    def score(w16: np.ndarray, w48: np.ndarray) -> np.ndarray:
        return scorer.score(w16, w48).mos

    return score


def window_cost_ms(model: Path | None, seconds: Sequence[float], budget_s: float) -> dict[float, float]:
    """CPU ms per window of each length, batch 1, one onnxruntime thread (median over ``budget_s`` each)."""
    from samos.runtime import Scorer

    scorer = Scorer(model, providers=("cpu",), threads=1)
    rng = np.random.default_rng(0)
    out: dict[float, float] = {}
    for w in seconds:
        n = round(w * SSL_RATE)
        w16 = (0.05 * rng.standard_normal((1, n))).astype(np.float32)
        w48 = (0.05 * rng.standard_normal((1, n * RATE_RATIO))).astype(np.float32)
        scorer.score(w16, w48)  # warm-up
        cpu: list[float] = []
        t0 = time.perf_counter()
        while len(cpu) < 3 or time.perf_counter() - t0 < budget_s:
            c = time.process_time()
            scorer.score(w16, w48)
            cpu.append(time.process_time() - c)
        out[w] = round(float(np.median(cpu)) * 1e3, 2)
    return out


# ------------------------------------------------------------------------------------------- report
def build_report(
    results: dict[float, WindowResult],
    cost_ms: dict[float, float],
    hops: Sequence[float],
    calls: Sequence[Call],
) -> dict[str, Any]:
    windows: dict[str, Any] = {}
    for w, res in results.items():
        total = len(res.pred) + res.cut
        ms = cost_ms.get(w)
        windows[f"{w:g}"] = {
            "accuracy": accuracy(res),
            "scored_fraction": round(len(res.pred) / total, 4) if total else 0.0,
            "cpu_ms_per_window": ms,
            "hops": {
                f"{h:g}": {
                    "cpu_s_per_stream_s": round(ms / 1e3 / h, 5) if ms is not None else None,
                    "change_to_score_s": round(w + h + (ms or 0.0) / 1e3, 3),
                }
                for h in hops
                if h <= w
            },
        }
    return {
        "windows": windows,
        "models": sorted({c.model for c in calls}),
        "seconds": {
            s: round(sum(len(c.wave16) for c in calls if c.set == s) / SSL_RATE, 1)
            for s in SETS
            if any(c.set == s for c in calls)
        },
    }


def format_table(report: dict[str, Any]) -> str:
    sets = [s for s in (*SETS, POOLED) if any(s in v["accuracy"] for v in report["windows"].values())]
    head = [
        "window s",
        *[f"{s} PCC/SRCC" for s in sets],
        "RMSE pooled",
        "scored",
        "CPU ms/win",
        "hop s: CPU-s/stream-s, change->score s",
    ]
    rows = [head]
    for w, v in report["windows"].items():
        acc = v["accuracy"]
        hops = "  ".join(
            f"{h}: {x['cpu_s_per_stream_s']}, {x['change_to_score_s']}" for h, x in v["hops"].items()
        )
        rows.append(
            [
                w,
                *[f"{acc[s]['pcc']:.3f}/{acc[s]['srcc']:.3f}" if s in acc else "-" for s in sets],
                f"{acc[POOLED]['rmse']:.3f}",
                f"{v['scored_fraction']:.2f}",
                str(v["cpu_ms_per_window"]),
                hops,
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(n) for c, n in zip(r, widths, strict=True)).rstrip() for r in rows)


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated seconds, got {text!r}") from None
    if not vals or min(vals) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive seconds, got {text!r}")
    return vals


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--p835", default=None, help=f"the P.835 reference folder (default {DEFAULT_P835} or $SAMOS_P835)"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--folds", type=Path, help="fold models of a samos bench accuracy run (its samos-<id> folder)"
    )
    src.add_argument(
        "--model", type=Path, help="one ONNX model that did not train on P.835 (e.g. a step-1 export)"
    )
    p.add_argument("--sets", default=",".join(SETS), help="comma-separated P.835 sets (default: all three)")
    p.add_argument(
        "--windows", type=_floats, default=DEFAULT_WINDOWS, help="window lengths, s (default 1,2,3,4,6,8)"
    )
    p.add_argument(
        "--hops", type=_floats, default=DEFAULT_HOPS, help="hops to cost, s (default 0.25,0.5,1,2)"
    )
    p.add_argument(
        "--step",
        type=float,
        default=1.0,
        help="spacing of the scored windows, s (default 1; at least window/2)",
    )
    p.add_argument(
        "--cost-model", type=Path, default=None, help="ONNX model to time (default: the embedded one)"
    )
    p.add_argument("--cost-budget", type=float, default=3.0, help="seconds of timing per window length")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip order")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report here")


def run(args: argparse.Namespace) -> int:
    import os

    root = args.p835 or os.environ.get("SAMOS_P835") or DEFAULT_P835
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    try:
        unknown = [s for s in sets if s not in SETS]
        if unknown:
            raise BenchError(f"unknown set(s) {unknown}; choose from {list(SETS)}")
        clips = load_p835(root, sets)
        if args.folds is not None:
            scorers, held = fold_scorers(args.folds, clips)
        else:
            scorers, held = {"model": onnx_scorer(args.model)}, {"model": list(clips)}
        calls = [
            join_clips(cs, s, key, args.seed)
            for key, group in held.items()
            for s in sets
            if (cs := [c for c in group if c.set == s])
        ]
        results = {}
        for w in args.windows:
            t = time.perf_counter()
            results[w] = res = score_windows(calls, scorers, w, max(args.step, w / 2))
            took = time.perf_counter() - t
            print(f"[windows] {w:g} s: {len(res.pred)} windows scored in {took:.0f} s", file=sys.stderr)
        cost = window_cost_ms(args.cost_model, args.windows, args.cost_budget)
    except (ValueError, OSError) as e:  # BenchError, P835Error, AudioError, ModelFileError, CheckpointError
        print(f"samos bench windows: {e}", file=sys.stderr)
        return 2
    report = build_report(results, cost, args.hops, calls)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report) if args.json else format_table(report))
    return 0
