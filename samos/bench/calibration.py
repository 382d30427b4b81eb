"""Scores on the listeners' scale, and whether ``mos_std`` means anything. Torch-free (numpy, scipy).

* ``fit_monotonic_poly3``: ITU-T P.1401's monotonic third-order mapping ``mos ~ c0 + c1 p + c2 p^2 +
  c3 p^3``, least squares under the constraint that it never decreases over the fitted range of
  predictions ``p`` (so it cannot change a ranking). Returned as a ``samos.runtime.Calibration``,
  which is what a model file carries and what the runtime applies.
* ``calibrate_cv``: cross-validated use of that mapping: for each fold, fitted on the training
  clips only and applied to the held-out ones, so RMSE "after" is never measured on the fit's own data.
* ``uncertainty_report``: coverage of ``|error| <= k * std`` for k = 1, 2 (a Gaussian that means what
  it says gives 0.683 and 0.954) and the rank correlation between ``|error|`` and ``std`` (0: the
  std says nothing about which scores to distrust).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from samos.runtime.modelinfo import Calibration

P1401_METHOD = "ITU-T P.1401 monotonic 3rd-order polynomial"
MIN_FIT_POINTS = 8
"""Fewer (distinct) training points than this: no polynomial, the identity is kept."""


def fit_monotonic_poly3(pred: np.ndarray, label: np.ndarray, method: str = P1401_METHOD) -> Calibration:
    """The least-squares cubic ``label ~ poly(pred)``, non-decreasing on ``[min pred, max pred]``.

    Fitted on standardised predictions for conditioning; when the free cubic already rises everywhere
    on the range it is the answer, otherwise SLSQP minimises the squared error with the derivative
    held >= 0 on a grid of the range (starting from the best straight line, which is feasible when its
    slope is positive). Predictions that do not rank with the labels at all (slope <= 0 even for a
    line) get the identity back: no monotonic map can help them. Raises ValueError on bad input.
    """
    x = np.asarray(pred, dtype=np.float64).reshape(-1)
    y = np.asarray(label, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"pred and label differ in length: {x.shape} vs {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("pred and label must be finite")
    if len(np.unique(x)) < MIN_FIT_POINTS:
        return Calibration()
    m, s = float(x.mean()), float(x.std())
    z = (x - m) / s
    lo, hi = float(z.min()), float(z.max())
    grid = np.linspace(lo, hi, 65)
    vander = np.vander(z, 4, increasing=True)
    dvander = np.stack([np.zeros_like(grid), np.ones_like(grid), 2 * grid, 3 * grid**2], axis=1)
    free, *_ = np.linalg.lstsq(vander, y, rcond=None)
    if _min_slope(tuple(free), (lo, hi)) >= 0.0:
        cz = free
    else:
        line = np.polyfit(z, y, 1)  # highest power first
        if line[0] <= 0:
            return Calibration()
        from scipy.optimize import minimize

        x0 = np.array([line[1], line[0], 0.0, 0.0])
        res = minimize(
            lambda c: float(np.sum((vander @ c - y) ** 2)),
            x0,
            jac=lambda c: 2.0 * vander.T @ (vander @ c - y),
            constraints=[{"type": "ineq", "fun": lambda c: dvander @ c, "jac": lambda c: dvander}],
            method="SLSQP",
            options={"maxiter": 500, "ftol": 1e-12},
        )
        # SLSQP often ends on "positive directional derivative" at the optimum: judge the point, not
        # the message (feasible, and no worse than the straight line it started from)
        sse = lambda c: float(np.sum((vander @ c - y) ** 2))  # noqa: E731
        ok = np.isfinite(res.x).all() and float((dvander @ res.x).min()) >= -1e-6 and sse(res.x) <= sse(x0)
        cz = np.array(res.x if ok else x0, dtype=np.float64)
    # the grid does not see between its points, and the solver stops within a tolerance: lift the linear
    # term by any deficit of the exact minimum slope, so the map is non-decreasing everywhere on the range
    deficit = -_min_slope(tuple(cz), (lo, hi))
    if deficit > 0:
        cz = cz.copy()
        cz[1] += deficit
    # back to raw predictions: poly_z((x - m) / s) as a polynomial in x
    px = np.polynomial.Polynomial(cz)(np.polynomial.Polynomial([-m / s, 1.0 / s]))
    coef = tuple(float(c) for c in np.pad(px.coef, (0, 4 - len(px.coef))))
    return Calibration(poly=coef, domain=(float(x.min()), float(x.max())), method=method)


def _min_slope(coef: tuple[float, ...], domain: tuple[float, float]) -> float:
    """Smallest derivative of ``sum(c_i z^i)`` over ``domain`` (exact)."""
    d = np.polynomial.polynomial.polyder(np.asarray(coef, dtype=np.float64))
    lo, hi = domain
    pts = [lo, hi]
    if len(d) > 1:
        roots = np.atleast_1d(np.polynomial.polynomial.polyroots(np.polynomial.polynomial.polyder(d)))
        pts += [float(r.real) for r in roots if abs(r.imag) < 1e-12 and lo < r.real < hi]
    return float(np.min(np.polynomial.polynomial.polyval(np.array(pts), d)))


def calibrate_cv(
    pred: np.ndarray, label: np.ndarray, train_masks: list[np.ndarray], test_masks: list[np.ndarray]
) -> np.ndarray:
    """Cross-validated calibrated predictions: for each fold, ``fit_monotonic_poly3`` on the clips of
    ``train_masks[k]`` and applied to those of ``test_masks[k]``; clips in no test mask keep NaN."""
    x = np.asarray(pred, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    out = np.full_like(x, np.nan)
    for train, test in zip(train_masks, test_masks, strict=True):
        cal = fit_monotonic_poly3(x[train], y[train])
        out[test] = cal.map_mos(x[test])
    return out


def calibrate_std_cv(
    pred: np.ndarray,
    std: np.ndarray,
    label: np.ndarray,
    train_masks: list[np.ndarray],
    test_masks: list[np.ndarray],
) -> np.ndarray:
    """The std after the fold's mapping (scaled by its local slope), as ``calibrate_cv`` maps the mean."""
    x = np.asarray(pred, dtype=np.float64)
    out = np.full_like(x, np.nan)
    for train, test in zip(train_masks, test_masks, strict=True):
        cal = fit_monotonic_poly3(x[train], np.asarray(label, dtype=np.float64)[train])
        out[test] = cal.slope(x[test]) * np.asarray(std, dtype=np.float64)[test]
    return out


def uncertainty_report(pred: np.ndarray, std: np.ndarray, label: np.ndarray) -> dict[str, Any]:
    """``{"coverage_1std", "coverage_2std", "srcc_abs_error_std", "mean_std", "std_range", "n"}``.

    Coverage: share of points with ``|pred - label| <= k * std``. ``srcc_abs_error_std``: Spearman
    correlation of ``|pred - label|`` with ``std`` (NaN when either is constant).
    """
    from scipy.stats import spearmanr

    p = np.asarray(pred, dtype=np.float64)
    s = np.asarray(std, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    if not p.shape == s.shape == y.shape or p.size == 0:
        raise ValueError(
            f"pred, std and label must be non-empty and of one shape: {p.shape} {s.shape} {y.shape}"
        )
    err = np.abs(p - y)
    rho = float("nan")
    if np.ptp(err) > 0 and np.ptp(s) > 0:
        rho = float(spearmanr(err, s).statistic)
    return {
        "coverage_1std": float(np.mean(err <= s)),
        "coverage_2std": float(np.mean(err <= 2 * s)),
        "srcc_abs_error_std": rho,
        "mean_std": float(np.mean(s)),
        "std_range": [float(np.min(s)), float(np.max(s))],
        "n": int(p.size),
    }
