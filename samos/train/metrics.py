"""Agreement between predicted and rated MOS: utterance- and condition-level (numpy only, torch-free).

PCC = Pearson (linear) correlation, SRCC = Spearman rank correlation, MSE / RMSE in MOS units.
Correlations of fewer than 2 points, or of a constant vector, are NaN (undefined), never an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Agreement:
    n: int
    pcc: float
    srcc: float
    mse: float
    rmse: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"n={self.n} PCC={self.pcc:.4f} SRCC={self.srcc:.4f} MSE={self.mse:.4f} RMSE={self.rmse:.4f}"


def _vectors(
    pred: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"predictions ({p.size}) and labels ({t.size}) differ in length")
    keep = np.isfinite(p) & np.isfinite(t)
    return p[keep], t[keep]


def _pcc(p: np.ndarray, t: np.ndarray) -> float:
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return math.nan
    pc, tc = p - p.mean(), t - t.mean()
    r = float(np.dot(pc, tc) / math.sqrt(float(np.dot(pc, pc)) * float(np.dot(tc, tc))))
    return max(-1.0, min(1.0, r))


def ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties get their average rank (as Spearman's correlation needs)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse].astype(np.float64)


def pearson(pred: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> float:
    return _pcc(*_vectors(pred, true))


def spearman(pred: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> float:
    p, t = _vectors(pred, true)
    return _pcc(ranks(p), ranks(t)) if p.size >= 2 else math.nan


def mse(pred: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> float:
    p, t = _vectors(pred, true)
    return float(np.mean((p - t) ** 2)) if p.size else math.nan


def agreement(pred: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> Agreement:
    """Utterance-level PCC, SRCC, MSE and RMSE (non-finite pairs are left out)."""
    p, t = _vectors(pred, true)
    m = mse(p, t)
    return Agreement(
        n=int(p.size), pcc=pearson(p, t), srcc=spearman(p, t), mse=m, rmse=math.sqrt(m) if m == m else m
    )


def condition_means(
    pred: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray, groups: Sequence[str]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per group: (names sorted, mean prediction, mean label)."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if not (p.size == t.size == len(groups)):
        raise ValueError("predictions, labels and groups differ in length")
    names = sorted(set(groups))
    g = np.asarray(groups, dtype=object)
    mp = np.array([np.nanmean(p[g == n]) for n in names])
    mt = np.array([np.nanmean(t[g == n]) for n in names])
    return names, mp, mt


def condition_agreement(
    pred: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray, groups: Sequence[str]
) -> Agreement:
    """Condition-level figures: mean prediction vs mean label per group."""
    _, mp, mt = condition_means(pred, true, groups)
    return agreement(mp, mt)


def gaussian_nll(mean: np.ndarray, var: np.ndarray, true: np.ndarray, eps: float = 1e-6) -> float:
    """Mean Gaussian negative log-likelihood (with the constant 0.5*log(2*pi)), as a float."""
    v = np.maximum(np.asarray(var, dtype=np.float64), eps)
    r = np.asarray(true, dtype=np.float64) - np.asarray(mean, dtype=np.float64)
    return float(np.mean(0.5 * (np.log(v) + r * r / v) + 0.5 * math.log(2 * math.pi)))
