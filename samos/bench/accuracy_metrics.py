"""The report sets of ``samos bench accuracy`` and their agreement figures (PCC, SRCC, RMSE at each
set's evaluation level); :class:`BenchError`, which every part of the benchmark raises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samos.bench.cv import PER_FILE_SETS, SETS, Clip
from samos.train import metrics

POOLED = "pooled"
REPORT_SETS = (*SETS, POOLED)


class BenchError(ValueError):
    """A benchmark that cannot run as asked (bad option, missing piece)."""


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
