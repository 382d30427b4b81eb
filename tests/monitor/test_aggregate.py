from __future__ import annotations

import math

import pytest

from samos.monitor.aggregate import RollingMos


def test_plain_mean_and_rms_std_over_the_horizon() -> None:
    r = RollingMos(3.0, "mean")
    r.push(1.0, 4.0, 0.3)
    r.push(2.0, 2.0, 0.4)
    v = r.push(3.0, 3.0, 0.5)
    assert v.mos == pytest.approx(3.0) and v.count == 3
    assert v.std == pytest.approx(math.sqrt((0.09 + 0.16 + 0.25) / 3))
    v = r.push(4.5)  # window at t=1 falls out; no new score
    assert v.count == 2 and v.mos == pytest.approx(2.5)


def test_inverse_variance_prefers_confident_windows() -> None:
    r = RollingMos(10.0, "inverse_variance")
    r.push(1.0, 4.0, 0.1)
    v = r.push(2.0, 2.0, 1.0)
    assert v.mos == pytest.approx((4 / 0.01 + 2 / 1.0) / (1 / 0.01 + 1 / 1.0))
    assert v.std == pytest.approx(math.sqrt(2 / (1 / 0.01 + 1)))


def test_empty_and_unscored_windows() -> None:
    r = RollingMos(2.0)
    assert r.value.mos is None and r.push(1.0).mos is None
    r.push(2.0, 3.0, None)
    assert r.push(3.0, float("nan"), 0.2).count == 1
    assert r.push(10.0).mos is None


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        RollingMos(0.0)
    with pytest.raises(ValueError):
        RollingMos(1.0, "median")
