"""P.835 clips and cross-validation folds: talkers from file names, no talker or condition split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from samos.bench.cv import (
    Clip,
    P835Error,
    condition_folds,
    fold_plan,
    linear_map_cv,
    load_p835,
    make_folds,
    talker_folds,
    talker_of,
)

P835 = Path("/work/shared/data/p835")


def _clip(set_name: str, name: str, label: float, cond: str) -> Clip:
    return Clip(
        path=Path("/x") / set_name / name,
        set=set_name,
        label=label,
        condition=cond,
        talker=talker_of(set_name, name),
    )


def test_talker_from_file_names() -> None:
    assert talker_of("fb48k", "c10_f2.wav") == "f2"
    assert talker_of("wb16k", "c0_m3.wav") == "m3"
    assert talker_of("nb8k", "sp0102_c3_sn0.wav") == "nz1"
    assert talker_of("nb8k", "sp0607_c12_sn0.wav") == "nz2"
    assert talker_of("nb8k", "sp1819_c1_sn0.wav") == "nz4"
    with pytest.raises(P835Error, match="different talkers"):
        talker_of("nb8k", "sp0506_c1_sn0.wav")
    with pytest.raises(P835Error, match="c3_f1"):
        talker_of("fb48k", "clip.wav")
    with pytest.raises(P835Error, match="unknown"):
        talker_of("xx", "c0_f1.wav")


def test_talker_folds_keep_talkers_together() -> None:
    clips = [
        _clip(s, f"c{k}_{t}.wav", 3.0, f"c{k}")
        for s in ("fb48k", "wb16k")
        for t in ("f1", "f2", "m1")
        for k in range(3)
    ]
    clips += [
        _clip("nb8k", f"sp{a:02d}{a + 1:02d}_c{k}_sn0.wav", 2.0, f"c{k}")
        for a in (1, 6, 11, 16)
        for k in range(2)
    ]
    folds = talker_folds(clips)
    assert sorted(set(folds.tolist())) == [0, 1, 2]
    for t in {c.talker for c in clips}:
        assert len({int(f) for c, f in zip(clips, folds, strict=True) if c.talker == t}) == 1
    # every fold holds wide-band talkers of both per-file sets
    for k in range(3):
        assert {c.set for c, f in zip(clips, folds, strict=True) if f == k} >= {"fb48k", "wb16k"}


def test_condition_folds_keep_conditions_together() -> None:
    clips = [_clip("fb48k", f"c{k}_f1.wav", 1.0 + k / 3, f"c{k}") for k in range(13)]
    clips += [_clip("nb8k", f"sp0102_c{k}_sn0.wav", 1.0 + k / 4, f"c{k}") for k in range(1, 13)]
    folds = condition_folds(clips, 4)
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3]
    for cond in {c.condition for c in clips}:
        assert len({int(f) for c, f in zip(clips, folds, strict=True) if c.condition == cond}) == 1
    with pytest.raises(ValueError, match="n_folds"):
        condition_folds(clips, 1)
    with pytest.raises(ValueError, match="scheme"):
        make_folds(clips, "random")


def test_linear_map_cv_never_sees_test_labels() -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(1, 5, 40)
    label = 0.5 * pred + 1.0 + rng.normal(0, 0.1, 40)
    folds = np.repeat(np.arange(4), 10)
    groups = np.array(["a", "b"] * 20)
    mapped = linear_map_cv(pred, label, folds, groups)
    assert np.sqrt(np.mean((mapped - label) ** 2)) < 0.2 < np.sqrt(np.mean((pred - label) ** 2))
    changed = label.copy()
    changed[folds == 0] += 10.0  # the held-out labels of fold 0 must not move fold 0's mapping
    again = linear_map_cv(pred, changed, folds, groups)
    np.testing.assert_allclose(again[folds == 0], mapped[folds == 0])


def test_load_p835_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(P835Error, match="no such folder"):
        load_p835(tmp_path / "nope")
    with pytest.raises(P835Error, match="missing"):
        load_p835(tmp_path)


@pytest.mark.skipif(not P835.is_dir(), reason="the P.835 reference set is not on this machine")
def test_real_p835_folds() -> None:
    clips = load_p835(P835)
    assert [sum(c.set == s for c in clips) for s in ("fb48k", "wb16k", "nb8k")] == [78, 78, 96]
    folds = talker_folds(clips)
    assert sorted(set(folds.tolist())) == list(range(6))
    assert {c.talker for c in clips if c.set == "nb8k"} == {"nz1", "nz2", "nz3", "nz4"}
    cf = condition_folds(clips)
    assert len(set(cf.tolist())) == 4


def test_condition_talker_folds_hold_out_both() -> None:
    clips = [
        _clip(s, f"c{k}_{t}.wav", 1.0 + k / 4, f"c{k}")
        for s in ("fb48k", "wb16k")
        for t in ("f1", "f2", "f3", "m1", "m2", "m3")
        for k in range(13)
    ]
    clips += [
        _clip("nb8k", f"sp{a:02d}{a + 1:02d}_c{k}_sn0.wav", 1.0 + k / 4, f"c{k}")
        for a in (1, 6, 11, 16)
        for k in range(1, 13)
    ]
    plan = fold_plan(clips, "condition_talker", n_condition_folds=4, n_talker_groups=3)
    assert plan.ids == list(range(12)) and plan.train.shape == (12, len(clips))
    assert np.array_equal(make_folds(clips, "condition_talker"), plan.test)
    for k in plan.ids:
        test = [c for c, m in zip(clips, plan.test_mask(k), strict=True) if m]
        train = [c for c, m in zip(clips, plan.train_mask(k), strict=True) if m]
        assert test and train
        assert {c.talker for c in test}.isdisjoint({c.talker for c in train})
        assert {c.condition for c in test}.isdisjoint({c.condition for c in train})
        assert 0.3 < len(train) / len(clips) < 0.6  # about half the set
    # talker groups pair one female and one male talker
    groups = {}
    for c, t in zip(clips, plan.test % 3, strict=True):
        groups.setdefault(int(t), set()).add(c.talker)
    assert {frozenset(g - {"nz1", "nz2", "nz3", "nz4"}) for g in groups.values()} == {
        frozenset({"f1", "m1"}),
        frozenset({"f2", "m2"}),
        frozenset({"f3", "m3"}),
    }
    # the plain schemes train on every other fold
    talker = fold_plan(clips, "talker")
    for k in talker.ids:
        np.testing.assert_array_equal(talker.train_mask(k), talker.test != k)
    # a linear map under the crossed plan only looks at each fold's training clips
    pred = np.array([c.label for c in clips]) * 0.5 + 1.0
    labels = np.array([c.label for c in clips])
    mapped = linear_map_cv(pred, labels, plan.test, np.array([c.set for c in clips]), plan.train_mask)
    np.testing.assert_allclose(mapped, labels, atol=1e-9)
    with pytest.raises(ValueError, match="n_talker_groups"):
        fold_plan(clips, "condition_talker", n_talker_groups=1)
