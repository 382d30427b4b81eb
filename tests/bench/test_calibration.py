"""Monotonic (P.1401) calibration fits, cross-validated use, and the uncertainty figures."""

from __future__ import annotations

import numpy as np
import pytest

from samos.bench.calibration import (
    calibrate_cv,
    calibrate_std_cv,
    fit_monotonic_poly3,
    uncertainty_report,
)
from samos.runtime.modelinfo import Calibration


def _compressed(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Predictions squeezed into 2.4-3.9 of listeners' 1.5-4.7, with a curve and noise."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(1.5, 4.7, n)
    pred = 2.4 + 1.5 * ((y - 1.5) / 3.2) ** 1.3 + rng.normal(0, 0.08, n)
    return pred, y


def test_fit_undoes_a_compressed_scale_and_never_reorders() -> None:
    pred, y = _compressed()
    cal = fit_monotonic_poly3(pred, y)
    assert len(cal.poly) == 4 and cal.domain == (pred.min(), pred.max())
    before = np.sqrt(np.mean((pred - y) ** 2))
    after = np.sqrt(np.mean((cal.map_mos(pred) - y) ** 2))
    assert after < 0.5 * before
    grid = np.linspace(0.0, 6.0, 601)  # inside and far outside the fitted range
    assert np.all(np.diff(cal.map_mos(grid)) >= -1e-12)
    order = np.argsort(pred, kind="stable")
    assert np.all(np.diff(cal.map_mos(pred)[order]) >= -1e-12)


def test_fit_stays_monotonic_where_the_free_cubic_bends_back() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(2.3, 3.9, 200)
    y = np.where(x < 3.0, 2.0, 2.0 + 3.0 * (x - 3.0)) + 0.3 * np.sin(8 * x)
    free = np.polynomial.Polynomial.fit(x, y, 3)
    assert (
        free.deriv()(np.linspace(x.min(), x.max(), 200)).min() < 0
    )  # the unconstrained fit is not monotonic
    cal = fit_monotonic_poly3(x, y)
    g = np.linspace(x.min(), x.max(), 400)
    assert np.all(np.diff(cal.map_mos(g)) >= -1e-9)
    line = np.polyval(np.polyfit(x, y, 1), x)
    assert np.mean((cal.map_mos(x) - y) ** 2) < np.mean((line - y) ** 2)


def test_fit_gives_the_identity_when_it_cannot_help() -> None:
    assert fit_monotonic_poly3(np.full(20, 3.0), np.linspace(1, 5, 20)).is_identity
    x = np.linspace(1, 5, 30)
    assert fit_monotonic_poly3(x, 6.0 - x).is_identity  # anti-correlated: no monotonic map helps
    with pytest.raises(ValueError, match="length"):
        fit_monotonic_poly3(x, x[:5])


def test_cross_validated_calibration_never_sees_the_test_labels() -> None:
    pred, y = _compressed(120)
    folds = np.arange(120) % 4
    trains = [folds != k for k in range(4)]
    tests = [folds == k for k in range(4)]
    out = calibrate_cv(pred, y, trains, tests)
    assert np.isfinite(out).all()
    y2 = y.copy()
    y2[folds == 0] = 5.0  # change only fold 0's labels: its own calibrated values must not move
    out2 = calibrate_cv(pred, y2, trains, tests)
    np.testing.assert_array_equal(out[folds == 0], out2[folds == 0])
    assert not np.allclose(out[folds == 1], out2[folds == 1])
    std = calibrate_std_cv(pred, np.full(120, 0.1), y, trains, tests)
    assert np.all(std >= 0) and not np.allclose(std, 0.1)


def test_uncertainty_report_on_known_errors() -> None:
    y = np.zeros(10)
    pred = np.array([0.5, -0.5, 1.5, -1.5, 2.5, 0.1, 0.2, 0.3, 3.0, 0.0])
    std = np.ones(10)
    r = uncertainty_report(pred, std, y)
    assert r["coverage_1std"] == pytest.approx(0.6)  # |err| <= 1: 0.5 0.5 0.1 0.2 0.3 0.0
    assert r["coverage_2std"] == pytest.approx(0.8)  # ... and 1.5 1.5, not 2.5 3.0
    assert np.isnan(r["srcc_abs_error_std"])  # a constant std cannot rank errors
    r = uncertainty_report(pred, np.abs(pred) + 0.01, y)
    assert r["srcc_abs_error_std"] == pytest.approx(1.0)
    assert r["coverage_1std"] == 1.0 and r["n"] == 10


def test_calibration_type_round_trips_and_refuses_bad_maps() -> None:
    cal = Calibration(poly=(0.5, 0.6, 0.05, 0.0), domain=(2.0, 4.0), method="test")
    back = Calibration.from_json(cal.to_json())
    assert back == cal
    assert "scale" not in cal.to_json()  # an affine-only runtime must refuse it, not ignore it
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    m = cal.map_mos(x)
    # outside the domain: straight lines with the end slopes
    assert m[0] == pytest.approx(m[1] - (0.6 + 0.1 * 2.0))
    assert m[4] == pytest.approx(m[3] + (0.6 + 0.1 * 4.0))
    mos, std = cal.apply(np.float32([3.0]), np.float32([0.5]))
    assert mos[0] == pytest.approx(0.5 + 1.8 + 0.45) and std[0] == pytest.approx(0.5 * 0.9)
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration(poly=(0.0, -1.0), domain=(1.0, 5.0))
    with pytest.raises(ValueError, match="domain"):
        Calibration(poly=(0.0, 1.0))
    with pytest.raises(ValueError, match="scale 1"):
        Calibration(2.0, 0.0, poly=(0.0, 1.0), domain=(1.0, 5.0))
    assert Calibration.from_json('{"scale": 2, "offset": 1}') == Calibration(2.0, 1.0)
