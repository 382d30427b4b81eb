"""The report of ``samos bench accuracy``: built from per-clip predictions (P.835 folds, the
out-of-domain set, the uncertainty figures), and formatted as a table."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from samos.bench.accuracy_metrics import POOLED, REPORT_SETS, agreement, evaluate, evaluation_points
from samos.bench.calibration import calibrate_cv, calibrate_std_cv, fit_monotonic_poly3, uncertainty_report
from samos.bench.cv import PER_FILE_SETS, Clip, FoldPlan, linear_map_cv
from samos.bench.ood import VMC24T3, OodClip
from samos.train import metrics


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
        lines.append(
            f"{'model':<16} | {'PCC':>6} {'SRCC':>6} {'RMSE':>6} | {'PCCc':>6} {'RMSEc':>6} | "
            f"{'sysPCC':>6} {'sysSRCC':>7} {'within':>6}"
        )
        systems = None
        for m, r in ood["models"].items():
            sy = r.get("system") or {}
            within = [v for v in (sy.get("within_pcc") or {}).values() if v is not None]
            systems = sy.get("n", systems)
            lines.append(
                f"{m:<16} | {_fmt(r['pcc']):>6} {_fmt(r['srcc']):>6} {_fmt(r['rmse']):>6} | "
                f"{_fmt(r.get('pcc_cal')):>6} {_fmt(r.get('rmse_cal')):>6} | "
                f"{_fmt(sy.get('pcc')):>6} {_fmt(sy.get('srcc')):>7} "
                f"{_fmt(float(np.median(within)) if within else None):>6}"
            )
        lines.append(
            "PCCc/RMSEc: after the monotonic mapping fitted on all of the model's P.835 predictions."
        )
        if systems:
            lines.append(
                f"sysPCC/sysSRCC: each of the {systems} systems' mean score against its mean rating; "
                "within: the median of the systems' own per-file PCC."
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


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


MIN_SYSTEMS = 3
"""Systems an out-of-domain set needs for system-level figures (a correlation over fewer means nothing)."""


def system_agreement(pred: np.ndarray, labels: np.ndarray, systems: Sequence[str]) -> dict[str, Any] | None:
    """System-level agreement, as the VoiceMOS challenges report it: each system's mean prediction
    against its mean label (``{"pcc", "srcc", "rmse", "n"}``, n = systems), plus ``within_pcc``, each
    system's own per-file PCC (how well files are ranked inside one system; None where its labels or
    predictions do not vary). None when the clips name fewer than :data:`MIN_SYSTEMS` systems."""
    names = sorted({s for s in systems if s})
    if len(names) < MIN_SYSTEMS:
        return None
    tags = np.array(list(systems))
    p_mean, y_mean, within = [], [], {}
    for name in names:
        idx = tags == name
        p_mean.append(float(np.mean(pred[idx])))
        y_mean.append(float(np.mean(labels[idx])))
        varies = idx.sum() > 2 and np.ptp(pred[idx]) > 0 and np.ptp(labels[idx]) > 0
        within[name] = float(np.corrcoef(pred[idx], labels[idx])[0, 1]) if varies else None
    out = agreement(np.array(p_mean), np.array(y_mean))
    out["within_pcc"] = within
    return out


def _ood_report(
    ood: Sequence[OodClip],
    direct_p835: dict[str, np.ndarray],
    p835_labels: np.ndarray,
    direct_ood: dict[str, np.ndarray],
) -> dict[str, Any]:
    """vmc24t3-style block: per model raw agreement and agreement after the P.835-fitted mapping, and
    (when the clips name systems) system-level agreement under ``"system"``."""
    y = np.array([c.label for c in ood])
    systems = [c.system for c in ood]
    models: dict[str, Any] = {}
    for name, pred in direct_ood.items():
        r = agreement(pred, y)
        cal = fit_monotonic_poly3(direct_p835[name], p835_labels)
        a = metrics.agreement(cal.map_mos(pred), y)
        r["rmse_cal"], r["pcc_cal"] = a.rmse, a.pcc
        system = system_agreement(np.asarray(pred, np.float64), y, systems)
        if system is not None:
            r["system"] = system
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
