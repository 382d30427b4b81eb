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

* ``samos_default``: a samos model FILE scored as is (``--model``; default: the shipped
  ``default.onnx``), whole clip. It was trained on every P.835 clip, so its P.835 figures are
  in-sample (flagged ``in_sample`` and marked ``*``: not accuracy); they serve to fit its calibration.

Every model also gets ``rmse_cal`` / ``pcc_cal``: after a monotonic third-order mapping (ITU-T P.1401,
``samos.bench.calibration``) fitted on the clips each fold may train on (one mapping for all sets, as
a model file carries one) and applied to its held-out clips.

Fold schemes (``--cv``, default ``talker,condition_talker``; ``samos.bench.cv.fold_plan``): talkers
held out; conditions held out; conditions AND talkers held out (no fold trains on a test clip's
talker or condition). Each scheme gets its own block (``schemes``); ``cv``/``models`` repeat the first.

Out of domain (``--vmc24t3``, default ``../shared/data/vmc24t3``): the VoiceMOS 2024 track 3 set,
scored by the models that never trained on it (``samos_default`` and the peers), raw and after the
mapping fitted on ALL of that model's P.835 predictions (so vmc24t3 only checks it). Skipped with a
message when the default folder is absent. Models with an uncertainty (``samos_default``) also get
``uncertainty``: coverage of |error| <= 1 and 2 std and the rank correlation of |error| with std,
raw and calibrated. ``--write-calibrated OUT.onnx`` writes ``--model`` with that P.835 mapping in its
metadata (``samos.export.metadata``).

Peer predictions are cached on disk per (audio SHA-256, peer version) (``--cache``), fold
predictions per (recipe, step-1 checkpoint, folds, audio SHA-256), so a rerun costs seconds.
``--per-clip FILE`` writes every model's per-clip predictions; ``--predictions FILE`` reads such a
file instead of computing its models (e.g. fold fine-tunes run on a GPU machine with ``--device cuda``).
Output: a table, or with ``--json`` one object
``{"sets": {...}, "cv": {...}, "models": {NAME: {SET: {"pcc", "srcc", "rmse", "n", ...}}}, "schemes":
{SCHEME: {"cv", "models"}}, "in_sample": [...], "out_of_domain": {"vmc24t3": {...}}, "calibration":
{...}, "uncertainty": {...}}``.
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
from samos.bench.calibration import calibrate_cv, calibrate_std_cv, fit_monotonic_poly3, uncertainty_report
from samos.bench.cv import (
    PER_FILE_SETS,
    SCHEMES,
    SETS,
    Clip,
    FoldPlan,
    P835Error,
    fold_plan,
    linear_map_cv,
    load_p835,
)
from samos.bench.ood import VMC24T3, OodClip, OodError, default_vmc24t3, load_vmc24t3
from samos.bench.peers import PEERS, PeerCache, PeerError, default_cache_dir, file_sha256, predict_files
from samos.runtime.modelinfo import ModelFileError
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
SAMOS_DEFAULT = "samos_default"
"""A samos model file scored as is (trained on all of P.835: in-sample there)."""
ALL_MODELS = (*SAMOS_MODELS, SAMOS_DEFAULT, *PEER_MODELS)
DEFAULT_SCHEMES = ("talker", "condition_talker")


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
    clips: Sequence[Clip],
    pred: np.ndarray,
    mapped: np.ndarray | None = None,
    calibrated: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """``{set: {"pcc", "srcc", "rmse", "n"}}``; with ``mapped`` also ``rmse_linear`` and ``pcc_linear``,
    with ``calibrated`` (cross-validated monotonic mapping) ``rmse_cal`` and ``pcc_cal``."""
    out: dict[str, dict[str, Any]] = {
        s: agreement(p, y) for s, (p, y) in evaluation_points(clips, pred).items()
    }
    for values, suffix in ((mapped, "linear"), (calibrated, "cal")):
        if values is None:
            continue
        for s, (p, y) in evaluation_points(clips, values).items():
            a = metrics.agreement(p, y)
            out[s][f"rmse_{suffix}"] = a.rmse
            out[s][f"pcc_{suffix}"] = a.pcc
    return out


# -------------------------------------------------------------------------------------- predictions
def peer_predictions(
    clips: Sequence[Clip],
    peer_name: str,
    cache: PeerCache | None,
    shas: dict[str, str],
    log: Callable[[str], None] = lambda s: None,
    peer: Any = None,
) -> dict[str, np.ndarray]:
    """Per-clip outputs of one peer: ``{output: (len(clips),)}``, cached per file SHA-256.

    ``clips``: anything with a ``path``; ``peer``: an already built peer (default: ``PEERS[peer_name]()``).
    """
    if peer is None:
        try:
            peer = PEERS[peer_name]()
        except (PeerError, ModelFileError) as e:
            raise BenchError(str(e)) from None

    def progress(i: int, n: int) -> None:
        if i == n or i % 25 == 0:
            log(f"{peer_name}: {i}/{n}")

    res = predict_files(peer, [c.path for c in clips], cache, shas=shas, progress=progress)
    return {o: np.array([res[str(c.path)][o] for c in clips]) for o in peer.outputs}


def samos_cv_predictions(
    clips: Sequence[Clip],
    plan: FoldPlan,
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
        plan.test,
        recipe=Path(args.config),
        spectrogram=(model == "samos"),
        pretrained=Path(pretrained) if pretrained else None,
        workdir=Path(args.workdir),
        cache=Path(args.cache),
        shas=shas,
        log=log,
        device=args.device,
        workers=args.workers,
        train_mask=None if plan.scheme in ("talker", "condition") else plan.train_mask,
    )


# ------------------------------------------------------------------------------------------- report
def _fmt(x: Any) -> str:
    return "  -  " if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table: one row per model, PCC / SRCC / RMSE, RMSE after the per-set linear mapping
    (peers) and after the cross-validated monotonic mapping, per set; one block per fold scheme, then the
    out-of-domain sets and the uncertainty figures when present."""
    sets = [s for s in REPORT_SETS if s in report["sets"]]
    in_sample = set(report.get("in_sample", []))
    head = f"{'model':<16}" + "".join(
        f" | {s + ' (n=' + str(report['sets'][s]['n']) + ')':^37}" for s in sets
    )
    sub = f"{'':<16}" + "".join(
        f" | {'PCC':>6} {'SRCC':>6} {'RMSE':>6} {'RMSEl':>6} {'RMSEc':>6}  " for _ in sets
    )
    lines: list[str] = []
    schemes = report.get("schemes") or {
        report["cv"]["scheme"]: {"cv": report["cv"], "models": report["models"]}
    }
    for scheme, block in schemes.items():
        lines += [f"P.835, {scheme} folds ({block['cv']['folds']})", head, sub, "-" * len(sub)]
        for name, per_set in block["models"].items():
            row = f"{name + ('*' if name in in_sample else ''):<16}"
            for s in sets:
                m = per_set.get(s, {})
                row += (
                    f" | {_fmt(m.get('pcc')):>6} {_fmt(m.get('srcc')):>6} {_fmt(m.get('rmse')):>6} "
                    f"{_fmt(m.get('rmse_linear')):>6} {_fmt(m.get('rmse_cal')):>6}  "
                )
            lines.append(row)
        lines.append("")
    lines.append(
        "nb8k at condition level; RMSEl = RMSE after a per-set linear mapping fitted on the training "
        "folds (peers only); RMSEc = RMSE after one monotonic 3rd-order mapping (P.1401) fitted on the "
        "training folds."
    )
    if in_sample:
        lines.append(
            f"* {', '.join(sorted(in_sample))}: trained on these P.835 clips; in-sample, NOT accuracy."
        )
    for name, ood in (report.get("out_of_domain") or {}).items():
        lines.append("")
        if "skipped" in ood:
            lines.append(f"{name}: skipped ({ood['skipped']})")
            continue
        lines.append(f"{name} (n={ood['n']}, per file; never trained on by these models)")
        lines.append(f"{'model':<16} | {'PCC':>6} {'SRCC':>6} {'RMSE':>6} | {'PCCc':>6} {'RMSEc':>6}")
        for m, r in ood["models"].items():
            lines.append(
                f"{m:<16} | {_fmt(r['pcc']):>6} {_fmt(r['srcc']):>6} {_fmt(r['rmse']):>6} | "
                f"{_fmt(r.get('pcc_cal')):>6} {_fmt(r.get('rmse_cal')):>6}"
            )
        lines.append(
            "PCCc/RMSEc: after the monotonic mapping fitted on all of the model's P.835 predictions."
        )
    for m, per in (report.get("uncertainty") or {}).items():
        lines.append("")
        lines.append(
            f"uncertainty of {m}: coverage |err| <= 1 std / 2 std (Gaussian: 0.683 / 0.954), SRCC(|err|, std)"
        )
        for where, u in per.items():
            for kind in ("raw", "calibrated"):
                if kind in u:
                    v = u[kind]
                    lines.append(
                        f"  {where:<22} {kind:<10} {_fmt(v['coverage_1std'])} / {_fmt(v['coverage_2std'])}, "
                        f"SRCC {_fmt(v['srcc_abs_error_std'])}, "
                        f"std {_fmt(v['std_range'][0])}-{_fmt(v['std_range'][1])}"
                    )
    return "\n".join(lines)


def build_report(
    clips: Sequence[Clip],
    folds: np.ndarray,
    scheme: str,
    preds: dict[str, np.ndarray],
    mapped_for: Sequence[str],
    train_mask: Callable[[int], np.ndarray] | None = None,
    calibrated_for: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON report from per-clip predictions; models in ``mapped_for`` get the CV linear mapping,
    those in ``calibrated_for`` the CV monotonic mapping. ``train_mask(k)``: fold ``k``'s training clips
    (default: the other folds)."""
    groups = np.array([c.set for c in clips])
    labels = np.array([c.label for c in clips])
    sets: dict[str, Any] = {}
    for s, (_, y) in evaluation_points(clips, labels).items():
        level = "file" if s in PER_FILE_SETS else ("condition" if s != POOLED else "mixed")
        sets[s] = {"n": len(y), "level": level}
    ids = sorted({int(k) for k in folds})
    trains = [(folds != k) if train_mask is None else train_mask(k) for k in ids]
    tests = [folds == k for k in ids]
    models: dict[str, Any] = {}
    for name, p in preds.items():
        mapped = linear_map_cv(p, labels, folds, groups, train_mask) if name in mapped_for else None
        cal = calibrate_cv(p, labels, trains, tests) if name in calibrated_for else None
        models[name] = evaluate(clips, p, mapped, cal)
    return {"sets": sets, "cv": {"scheme": scheme, "folds": len(ids)}, "models": models}


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
        default=",".join(DEFAULT_SCHEMES),
        help=f"comma-separated fold schemes, each reported: {', '.join(SCHEMES)} "
        f"(default {','.join(DEFAULT_SCHEMES)}; condition_talker holds out conditions AND talkers)",
    )
    p.add_argument("--condition-folds", type=int, default=4, help="condition groups (condition schemes)")
    p.add_argument(
        "--talker-groups",
        type=int,
        default=3,
        help="talker groups of the condition_talker scheme (default 3)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="the samos model file scored as samos_default (default: the shipped default.onnx)",
    )
    p.add_argument(
        "--vmc24t3",
        default=None,
        help="the VoiceMOS 2024 track 3 folder (default: $SAMOS_VMC24T3 or ../shared/data/vmc24t3 next to "
        "the repository, skipped with a message when absent); 'none' skips it",
    )
    p.add_argument(
        "--write-calibrated",
        default=None,
        metavar="OUT.onnx",
        help="write --model with the monotonic mapping fitted on all its P.835 predictions in its metadata",
    )
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


def _ood_report(
    ood: Sequence[OodClip],
    direct_p835: dict[str, np.ndarray],
    p835_labels: np.ndarray,
    direct_ood: dict[str, np.ndarray],
) -> dict[str, Any]:
    """vmc24t3-style block: per model raw agreement and agreement after the P.835-fitted mapping."""
    y = np.array([c.label for c in ood])
    models: dict[str, Any] = {}
    for name, pred in direct_ood.items():
        r = agreement(pred, y)
        cal = fit_monotonic_poly3(direct_p835[name], p835_labels)
        a = metrics.agreement(cal.map_mos(pred), y)
        r["rmse_cal"], r["pcc_cal"] = a.rmse, a.pcc
        models[name] = r
    return {"n": len(ood), "level": "file", "models": models}


def _uncertainty(
    clips: Sequence[Clip],
    plan: FoldPlan,
    pred: np.ndarray,
    std: np.ndarray,
    ood: Sequence[OodClip] | None,
    ood_pred: np.ndarray | None,
    ood_std: np.ndarray | None,
) -> dict[str, Any]:
    """Coverage and |error|-std rank correlation on the per-file P.835 sets (in-sample for the default
    model: labelled so) and vmc24t3; raw and after the mapping (P.835: cross-validated under ``plan``)."""
    labels = np.array([c.label for c in clips])
    ids = plan.ids
    trains = [plan.train_mask(k) for k in ids]
    tests = [plan.test_mask(k) for k in ids]
    cal_pred = calibrate_cv(pred, labels, trains, tests)
    cal_std = calibrate_std_cv(pred, std, labels, trains, tests)
    out: dict[str, Any] = {}
    for s in PER_FILE_SETS:
        idx = np.array([i for i, c in enumerate(clips) if c.set == s], dtype=np.int64)
        if idx.size:
            out[f"{s} (in-sample)"] = {
                "raw": uncertainty_report(pred[idx], std[idx], labels[idx]),
                "calibrated": uncertainty_report(cal_pred[idx], cal_std[idx], labels[idx]),
            }
    if ood is not None and ood_pred is not None and ood_std is not None:
        y = np.array([c.label for c in ood])
        cal = fit_monotonic_poly3(pred, labels)
        out[VMC24T3] = {
            "raw": uncertainty_report(ood_pred, ood_std, y),
            "calibrated": uncertainty_report(cal.map_mos(ood_pred), cal.slope(ood_pred) * ood_std, y),
        }
    return out


def _per_clip_path(path: str, scheme: str, several: bool) -> Path:
    p = Path(path)
    return p.with_name(f"{p.stem}.{scheme}{p.suffix}") if several else p


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
    schemes = [c.strip() for c in args.cv.split(",") if c.strip()]
    if not schemes or any(c not in SCHEMES for c in schemes) or len(set(schemes)) != len(schemes):
        print(
            f"samos bench accuracy: --cv takes some of {', '.join(SCHEMES)}, got {args.cv!r}", file=sys.stderr
        )
        return 2
    if args.predictions and len(schemes) > 1:
        print(
            "samos bench accuracy: --predictions holds the fold predictions of ONE scheme: give one --cv",
            file=sys.stderr,
        )
        return 2
    if args.write_calibrated and SAMOS_DEFAULT not in models:
        print(f"samos bench accuracy: --write-calibrated needs the model {SAMOS_DEFAULT}", file=sys.stderr)
        return 2
    vmc_root = Path(args.vmc24t3) if args.vmc24t3 not in (None, "", "none") else None
    explicit_vmc = args.vmc24t3 not in (None, "", "none")
    if args.vmc24t3 is None:
        vmc_root = default_vmc24t3()
    direct_names = [m for m in models if m == SAMOS_DEFAULT or m in PEER_MODELS]
    ood_block: dict[str, Any] = {}
    try:
        clips = load_p835(args.p835, [s.strip() for s in args.sets.split(",") if s.strip()])
        labels = np.array([c.label for c in clips])
        shas = {str(c.path): file_sha256(c.path) for c in clips}
        cache = PeerCache(args.cache)
        ood: list[OodClip] | None = None
        if vmc_root is not None and direct_names:
            try:
                ood = load_vmc24t3(vmc_root)
            except OodError as e:
                if explicit_vmc:
                    raise BenchError(str(e)) from None
                log(f"samos bench accuracy: out-of-domain set skipped: {e} (give --vmc24t3 DIR)")
                ood_block[VMC24T3] = {"skipped": str(e)}
        elif direct_names:
            ood_block[VMC24T3] = {"skipped": "--vmc24t3 none"}
        ood_shas = {str(c.path): file_sha256(c.path) for c in ood} if ood else {}
        # models that are not trained on P.835 folds: the same predictions under every scheme
        direct: dict[str, np.ndarray] = {}
        direct_ood: dict[str, np.ndarray] = {}
        default_std: dict[str, np.ndarray] = {}
        samos_peer = None
        if SAMOS_DEFAULT in models:
            try:
                samos_peer = PEERS["samos_onnx"](args.model) if args.model else PEERS["samos_onnx"]()  # type: ignore[call-arg]
            except (PeerError, ModelFileError) as e:
                raise BenchError(str(e)) from None
            out = peer_predictions(clips, "samos_onnx", cache, shas, log, peer=samos_peer)
            direct[SAMOS_DEFAULT], default_std["p835"] = out["mos"], out["std"]
            if ood:
                out = peer_predictions(ood, "samos_onnx", cache, ood_shas, log, peer=samos_peer)
                direct_ood[SAMOS_DEFAULT], default_std[VMC24T3] = out["mos"], out["std"]
        outputs: dict[str, dict[str, np.ndarray]] = {}
        outputs_ood: dict[str, dict[str, np.ndarray]] = {}
        for m in models:
            if m in PEER_MODELS:
                peer, out_name = PEER_MODELS[m]
                if peer not in outputs:
                    outputs[peer] = peer_predictions(clips, peer, cache, shas, log)
                    if ood:
                        outputs_ood[peer] = peer_predictions(ood, peer, cache, ood_shas, log)
                direct[m] = outputs[peer][out_name]
                if ood:
                    direct_ood[m] = outputs_ood[peer][out_name]
        blocks: dict[str, dict[str, Any]] = {}
        plans: dict[str, FoldPlan] = {}
        for scheme in schemes:
            plan = fold_plan(clips, scheme, args.condition_folds, args.talker_groups)
            plans[scheme] = plan
            preds: dict[str, np.ndarray] = {}
            for f in args.predictions:
                preds.update({k: v for k, v in read_per_clip(f, clips).items() if k in models})
            for m in models:
                if m in SAMOS_MODELS and m not in preds:
                    preds[m] = samos_cv_predictions(clips, plan, m, args, shas, log)
            preds.update({m: v for m, v in direct.items() if m not in preds})
            preds = {m: preds[m] for m in models}
            if args.per_clip:
                write_per_clip(
                    _per_clip_path(args.per_clip, scheme, len(schemes) > 1), clips, plan.test, preds
                )
            blocks[scheme] = build_report(
                clips,
                plan.test,
                scheme,
                preds,
                mapped_for=[m for m in preds if m in PEER_MODELS],
                train_mask=plan.train_mask,
                calibrated_for=list(preds),
            )
    except (P835Error, BenchError, AudioError, ValueError) as e:
        print(f"samos bench accuracy: {e}", file=sys.stderr)
        return 1
    first = blocks[schemes[0]]
    report: dict[str, Any] = {
        "sets": first["sets"],
        "cv": first["cv"],
        "models": first["models"],
        "schemes": {k: {"cv": b["cv"], "models": b["models"]} for k, b in blocks.items()},
        "in_sample": [SAMOS_DEFAULT] if SAMOS_DEFAULT in models else [],
    }
    if ood:
        ood_block[VMC24T3] = _ood_report(ood, direct, labels, direct_ood)
    if ood_block:
        report["out_of_domain"] = ood_block
    if SAMOS_DEFAULT in models:
        cal = fit_monotonic_poly3(direct[SAMOS_DEFAULT], labels)
        report["calibration"] = {
            SAMOS_DEFAULT: {
                "fitted_on": f"P.835 {','.join(sorted({c.set for c in clips}))}: {len(clips)} clips",
                "samos.calibration": json.loads(cal.to_json()),
            }
        }
        report["uncertainty"] = {
            SAMOS_DEFAULT: _uncertainty(
                clips,
                plans[schemes[0]],
                direct[SAMOS_DEFAULT],
                default_std["p835"],
                ood,
                direct_ood.get(SAMOS_DEFAULT),
                default_std.get(VMC24T3),
            )
        }
        if args.write_calibrated:
            from samos.export.metadata import write_calibration

            assert samos_peer is not None
            dst = write_calibration(samos_peer.path, args.write_calibrated, cal)
            log(f"samos bench accuracy: wrote {dst} with calibration {cal.to_json()}")
    report = _json_safe(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
