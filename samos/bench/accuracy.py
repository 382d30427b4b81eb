"""``samos bench accuracy``: agreement with listeners on the P.835 reference set, in one run.

Reports PCC, SRCC and RMSE per set -- fb48k and wb16k per file, nb8k per CONDITION (mean
prediction over the condition's clips against ``condition_mos``), and the three pooled (78 + 78 + 12
points) -- for:

* ``samos`` and ``samos_ssl_only``: the default recipe (``configs/default.yaml``) cross-validated by
  talker (or by condition): for each fold, step 2 is fine-tuned from the step-1 checkpoint
  (``--pretrained``; without it, from the recipe's initialisation: "step 2 only") on the other
  folds' clips of all three sets and predicts the held-out fold, so no reported clip was trained on.
  ``samos_ssl_only`` is the same recipe and folds with the spectrogram branch disabled (its own
  step-1 checkpoint: ``--pretrained-ssl-only``). See ``samos.bench.cv.cross_validate``.
* peers, evaluated directly (they were not trained on P.835): ``dnsmos_p835`` (OVRL),
  ``dnsmos_p808``, ``distillmos``. Their scales differ from these listening tests, so each peer also
  gets ``rmse_linear`` (and ``pcc_linear``, which only differs from ``pcc`` in the pooled set): the
  RMSE after a per-set linear mapping ``mos ~ a * pred + b`` fitted on the training folds of the same
  CV folds and applied to the held-out fold (nb8k: fitted per clip against its condition MOS).

Peer predictions are cached on disk per (audio SHA-256, peer version) (``--cache``), fold
predictions per (recipe, step-1 checkpoint, folds, audio SHA-256), so a rerun costs seconds.
``--per-clip FILE`` writes every model's per-clip predictions; ``--predictions FILE`` reads such a
file instead of computing its models (e.g. fold fine-tunes run on a GPU machine with ``--device cuda``).
Output: a table, or with ``--json`` one object
``{"sets": {...}, "cv": {...}, "models": {NAME: {SET: {"pcc", "srcc", "rmse", "n", ...}}}}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samos.audio import AudioError
from samos.bench.cv import PER_FILE_SETS, SETS, Clip, P835Error, linear_map_cv, load_p835, make_folds
from samos.bench.peers import PEERS, PeerCache, PeerError, default_cache_dir, file_sha256, predict_files
from samos.train import metrics

DEFAULT_P835 = "/work/shared/data/p835"
POOLED = "pooled"
REPORT_SETS = (*SETS, POOLED)

PEER_MODELS: dict[str, tuple[str, str]] = {
    "dnsmos_p835": ("dnsmos", "ovrl"),
    "dnsmos_p808": ("dnsmos", "p808"),
    "distillmos": ("distillmos", "mos"),
}
"""Benchmark model name -> (peer, output)."""
SAMOS_MODELS = ("samos", "samos_ssl_only")
ALL_MODELS = (*SAMOS_MODELS, *PEER_MODELS)


class BenchError(ValueError):
    """A benchmark that cannot run as asked (bad option, missing piece)."""


# ------------------------------------------------------------------------------------------ metrics
def agreement(pred: np.ndarray, label: np.ndarray) -> dict[str, Any]:
    """``{"pcc", "srcc", "rmse", "n"}`` of predictions against labels (``samos.train.metrics``)."""
    a = metrics.agreement(pred, label)
    return {"pcc": a.pcc, "srcc": a.srcc, "rmse": a.rmse, "n": a.n}


def evaluation_points(clips: Sequence[Clip], pred: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per report set, ``(predictions, labels)`` at its evaluation level.

    ``pred``: ``(len(clips),)`` per-clip predictions. fb48k/wb16k: one point per clip; nb8k: one
    point per condition (mean prediction, condition MOS); pooled: all points of the present sets.
    """
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape != (len(clips),):
        raise ValueError(f"expected {len(clips)} predictions, got shape {pred.shape}")
    points: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in SETS:
        idx = [i for i, c in enumerate(clips) if c.set == s]
        if not idx:
            continue
        if s in PER_FILE_SETS:
            points[s] = (pred[idx], np.array([clips[i].label for i in idx]))
            continue
        p, y = [], []
        for k in sorted({clips[i].condition for i in idx}):
            members = [i for i in idx if clips[i].condition == k]
            p.append(float(np.mean(pred[members])))
            y.append(float(np.mean([clips[i].label for i in members])))
        points[s] = (np.array(p), np.array(y))
    if points:
        points[POOLED] = (
            np.concatenate([v[0] for v in points.values()]),
            np.concatenate([v[1] for v in points.values()]),
        )
    return points


def evaluate(
    clips: Sequence[Clip], pred: np.ndarray, mapped: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """``{set: {"pcc", "srcc", "rmse", "n"}}``; with ``mapped`` also ``rmse_linear`` and ``pcc_linear``."""
    out: dict[str, dict[str, Any]] = {
        s: agreement(p, y) for s, (p, y) in evaluation_points(clips, pred).items()
    }
    if mapped is not None:
        for s, (p, y) in evaluation_points(clips, mapped).items():
            lin = metrics.agreement(p, y)
            out[s]["rmse_linear"] = lin.rmse
            out[s]["pcc_linear"] = lin.pcc
    return out


# -------------------------------------------------------------------------------------- predictions
def peer_predictions(
    clips: Sequence[Clip],
    peer_name: str,
    cache: PeerCache | None,
    shas: dict[str, str],
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, np.ndarray]:
    """Per-clip outputs of one peer: ``{output: (len(clips),)}``, cached per file SHA-256."""
    try:
        peer = PEERS[peer_name]()
    except PeerError as e:
        raise BenchError(str(e)) from None

    def progress(i: int, n: int) -> None:
        if i == n or i % 25 == 0:
            log(f"{peer_name}: {i}/{n}")

    res = predict_files(peer, [c.path for c in clips], cache, shas=shas, progress=progress)
    return {o: np.array([res[str(c.path)][o] for c in clips]) for o in peer.outputs}


def samos_cv_predictions(
    clips: Sequence[Clip],
    folds: np.ndarray,
    model: str,
    args: argparse.Namespace,
    shas: dict[str, str],
    log: Callable[[str], None],
) -> np.ndarray:
    """Cross-validated per-clip predictions of the default recipe (``model``: samos / samos_ssl_only)."""
    from samos.bench.cv import cross_validate  # torch: imported only when a samos model is asked for

    pretrained = args.pretrained if model == "samos" else args.pretrained_ssl_only
    return cross_validate(
        clips,
        folds,
        recipe=Path(args.config),
        spectrogram=(model == "samos"),
        pretrained=Path(pretrained) if pretrained else None,
        workdir=Path(args.workdir),
        cache=Path(args.cache),
        shas=shas,
        log=log,
        device=args.device,
        workers=args.workers,
    )


# ------------------------------------------------------------------------------------------- report
def _fmt(x: Any) -> str:
    return "  -  " if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table: one row per model, PCC / SRCC / RMSE (and RMSE after linear mapping) per set."""
    sets = [s for s in REPORT_SETS if s in report["sets"]]
    head = f"{'model':<16}" + "".join(
        f" | {s + ' (n=' + str(report['sets'][s]['n']) + ')':^30}" for s in sets
    )
    sub = f"{'':<16}" + "".join(f" | {'PCC':>6} {'SRCC':>6} {'RMSE':>6} {'RMSEl':>6}  " for _ in sets)
    lines = [head, sub, "-" * len(sub)]
    for name, per_set in report["models"].items():
        row = f"{name:<16}"
        for s in sets:
            m = per_set.get(s, {})
            row += (
                f" | {_fmt(m.get('pcc')):>6} {_fmt(m.get('srcc')):>6} {_fmt(m.get('rmse')):>6} "
                f"{_fmt(m.get('rmse_linear')):>6}  "
            )
        lines.append(row)
    lines.append("")
    lines.append(
        f"CV: {report['cv']['scheme']} folds ({report['cv']['folds']}); nb8k at condition level; "
        "RMSEl = RMSE after a per-set linear mapping fitted on the training folds (peers only)."
    )
    return "\n".join(lines)


def build_report(
    clips: Sequence[Clip],
    folds: np.ndarray,
    scheme: str,
    preds: dict[str, np.ndarray],
    mapped_for: Sequence[str],
) -> dict[str, Any]:
    """The JSON report from per-clip predictions; models in ``mapped_for`` get the CV linear mapping."""
    groups = np.array([c.set for c in clips])
    labels = np.array([c.label for c in clips])
    sets: dict[str, Any] = {}
    for s, (_, y) in evaluation_points(clips, labels).items():
        level = "file" if s in PER_FILE_SETS else ("condition" if s != POOLED else "mixed")
        sets[s] = {"n": len(y), "level": level}
    models: dict[str, Any] = {}
    for name, p in preds.items():
        mapped = linear_map_cv(p, labels, folds, groups) if name in mapped_for else None
        models[name] = evaluate(clips, p, mapped)
    return {"sets": sets, "cv": {"scheme": scheme, "folds": int(len(np.unique(folds)))}, "models": models}


CLIP_COLUMNS = ("set", "file", "talker", "condition", "label", "fold")


def clip_key(c: Clip) -> tuple[str, str]:
    """``(set, file stem)``: names a clip across copies of the set (e.g. a FLAC copy of the WAVs)."""
    return c.set, c.path.stem


def write_per_clip(
    path: str | Path, clips: Sequence[Clip], folds: np.ndarray, preds: dict[str, np.ndarray]
) -> Path:
    """Per-clip predictions as CSV: ``set, file, talker, condition, label, fold``, then one column a model."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*CLIP_COLUMNS, *preds])
        for i, c in enumerate(clips):
            w.writerow(
                [
                    c.set,
                    c.path.stem,
                    c.talker,
                    c.condition,
                    f"{c.label:.4f}",
                    int(folds[i]),
                    *(f"{float(v[i]):.6f}" for v in preds.values()),
                ]
            )
    return p


def read_per_clip(path: str | Path, clips: Sequence[Clip]) -> dict[str, np.ndarray]:
    """Models' per-clip predictions from a ``write_per_clip`` CSV, aligned to ``clips`` by (set, file stem).

    Raises BenchError when the file is missing or lacks a clip.
    """
    p = Path(path)
    if not p.is_file():
        raise BenchError(f"{p}: no such predictions file")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    names = [k for k in (rows[0].keys() if rows else []) if k not in CLIP_COLUMNS]
    by_key = {(r["set"], r["file"]): r for r in rows}
    out: dict[str, np.ndarray] = {}
    for name in names:
        vals = []
        for c in clips:
            row = by_key.get(clip_key(c))
            if row is None or not row.get(name):
                raise BenchError(f"{p}: no {name} prediction for {c.set}/{c.path.name}")
            vals.append(float(row[name]))
        out[name] = np.array(vals)
    return out


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


# ---------------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--p835",
        default=os.environ.get("SAMOS_P835", DEFAULT_P835),
        help=f"the P.835 reference folder (default {DEFAULT_P835} or $SAMOS_P835)",
    )
    p.add_argument(
        "--models",
        default=",".join(ALL_MODELS),
        help=f"comma-separated subset of {', '.join(ALL_MODELS)} (default: all)",
    )
    p.add_argument("--sets", default=",".join(SETS), help="comma-separated P.835 sets (default: all three)")
    p.add_argument(
        "--cv",
        choices=("talker", "condition"),
        default="talker",
        help="fold by talker (default) or by condition (unseen conditions: harder)",
    )
    p.add_argument("--condition-folds", type=int, default=4, help="number of folds for --cv condition")
    p.add_argument(
        "--config", default="configs/default.yaml", help="the samos recipe (step 2 is cross-validated)"
    )
    p.add_argument(
        "--pretrained",
        default=None,
        help="step-1 checkpoint that 'samos' folds fine-tune from (default: none, step 2 alone)",
    )
    p.add_argument(
        "--pretrained-ssl-only",
        default=None,
        help="step-1 checkpoint of the SSL-only variant (same recipe, spectrogram branch off)",
    )
    p.add_argument("--workers", type=int, default=None, help="data-loader processes for the fold runs")
    p.add_argument(
        "--device", default=None, help="override the recipe's device for the fold runs (cpu, cuda)"
    )
    p.add_argument("--workdir", default="runs/bench_accuracy", help="fold checkpoints and manifests go here")
    p.add_argument("--cache", default=str(default_cache_dir()), help="prediction cache folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--out", default=None, help="also write the JSON report to this file")
    p.add_argument(
        "--per-clip", default=None, help="also write every model's per-clip predictions (CSV) here"
    )
    p.add_argument(
        "--predictions",
        action="append",
        default=[],
        help="per-clip predictions CSV (from --per-clip, e.g. of a run on another machine): its models "
        "are taken from it instead of being computed; repeatable",
    )


def run(args: argparse.Namespace) -> int:
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown or not models:
        print(
            f"samos bench accuracy: unknown model(s) {unknown}; choose from {list(ALL_MODELS)}",
            file=sys.stderr,
        )
        return 2
    try:
        clips = load_p835(args.p835, [s.strip() for s in args.sets.split(",") if s.strip()])
        folds = make_folds(clips, args.cv, args.condition_folds)
        shas = {str(c.path): file_sha256(c.path) for c in clips}
        cache = PeerCache(args.cache)
        preds: dict[str, np.ndarray] = {}
        for f in args.predictions:
            preds.update({k: v for k, v in read_per_clip(f, clips).items() if k in models})
        for m in models:
            if m in SAMOS_MODELS and m not in preds:
                preds[m] = samos_cv_predictions(clips, folds, m, args, shas, log)
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for m in models:
            if m in PEER_MODELS and m not in preds:
                peer, out = PEER_MODELS[m]
                if peer not in outputs:
                    outputs[peer] = peer_predictions(clips, peer, cache, shas, log)
                preds[m] = outputs[peer][out]
    except (P835Error, BenchError, AudioError, ValueError) as e:
        print(f"samos bench accuracy: {e}", file=sys.stderr)
        return 1
    preds = {m: preds[m] for m in models}
    if args.per_clip:
        write_per_clip(args.per_clip, clips, folds, preds)
    report = build_report(clips, folds, args.cv, preds, mapped_for=[m for m in preds if m in PEER_MODELS])
    report = _json_safe(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
