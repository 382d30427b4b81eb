"""Utterance- and condition-level agreement figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from samos.train.metrics import (
    agreement,
    condition_agreement,
    condition_means,
    gaussian_nll,
    mse,
    pearson,
    spearman,
)


def test_against_scipy_and_by_hand() -> None:
    rng = np.random.default_rng(0)
    t = rng.uniform(1, 5, 50)
    p = t + rng.normal(0, 0.5, 50)
    a = agreement(p, t)
    assert a.n == 50
    assert a.pcc == pytest.approx(stats.pearsonr(p, t)[0])
    assert a.srcc == pytest.approx(stats.spearmanr(p, t)[0])
    assert a.mse == pytest.approx(np.mean((p - t) ** 2))
    assert a.rmse == pytest.approx(math.sqrt(a.mse))
    assert "PCC=" in str(a)


def test_spearman_with_ties_matches_scipy() -> None:
    p = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 5.0, 0.5])
    t = np.array([1.5, 1.0, 2.5, 2.5, 4.0, 3.0, 5.0, 1.0])
    assert spearman(p, t) == pytest.approx(stats.spearmanr(p, t)[0])
    assert pearson(p, t) == pytest.approx(stats.pearsonr(p, t)[0])


def test_undefined_cases_are_nan_not_errors() -> None:
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([2.0], [3.0]))
    assert math.isnan(mse([], []))
    a = agreement([1.0, float("nan"), 3.0], [1.0, 2.0, 2.0])
    assert a.n == 2
    with pytest.raises(ValueError, match="differ in length"):
        agreement([1, 2], [1, 2, 3])


def test_condition_level_uses_group_means() -> None:
    pred = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    true = [1.5, 1.5, 3.5, 3.5, 9.0, 3.0]
    groups = ["a", "a", "b", "b", "c", "c"]
    names, mp, mt = condition_means(pred, true, groups)
    assert names == ["a", "b", "c"]
    np.testing.assert_allclose(mp, [1.5, 3.5, 5.5])
    np.testing.assert_allclose(mt, [1.5, 3.5, 6.0])
    con = condition_agreement(pred, true, groups)
    assert con.n == 3 and con.pcc > 0.99
    assert agreement(pred, true).pcc < con.pcc


def test_gaussian_nll_matches_torch_definition() -> None:
    import torch

    mean, var, true = np.array([3.0, 2.0]), np.array([0.5, 2.0]), np.array([3.5, 1.0])
    ref = torch.nn.GaussianNLLLoss(full=True)(torch.tensor(mean), torch.tensor(true), torch.tensor(var))
    assert gaussian_nll(mean, var, true) == pytest.approx(float(ref))
