"""MixSampler: shares of each manifest, epoch length, reproducible per (seed, epoch), rank split."""

from __future__ import annotations

import numpy as np
import pytest

from samos.train.sampling import MixSampler


def test_shares_and_epoch_length() -> None:
    s = MixSampler([100, 5000], [0.5, 0.5], seed=3)
    idx = np.array(list(s))
    assert len(s) == len(idx) == 200  # the first manifest seen about once per epoch
    first = (idx < 100).mean()
    assert 0.4 < first < 0.6
    assert idx.min() >= 0 and idx.max() < 5100
    assert len(set(idx[idx >= 100].tolist())) > 80  # drawn across the large manifest, not a prefix


def test_reproducible_per_epoch_and_different_across_epochs() -> None:
    a, b = MixSampler([50, 50], [1, 3], seed=1), MixSampler([50, 50], [1, 3], seed=1)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


def test_ranks_split_one_epoch_into_equal_parts() -> None:
    samplers = [MixSampler([30, 70], [0.3, 0.7], seed=0, rank=r, world=3) for r in range(3)]
    parts = [list(s) for s in samplers]
    assert len({len(p) for p in parts}) == 1  # the same number of batches on every rank
    # 100 rounded up to 102, split by 3
    assert [len(s) for s in samplers] == [len(p) for p in parts] == [34] * 3
    draw = samplers[0]._draw()
    assert [list(map(int, draw[r::3])) for r in range(3)] == parts


@pytest.mark.parametrize(
    "sizes, shares, match",
    [([10, 10], [1.0], "2 training manifests"), ([10, 10], [1.0, 0.0], "> 0"), ([10, 0], [1, 1], "#2")],
)
def test_bad_mixes_are_clear_errors(sizes: list[int], shares: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MixSampler(sizes, shares, seed=0)
