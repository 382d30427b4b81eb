"""Drawing and applying degradation plans."""

from __future__ import annotations

import math

import numpy as np

from samos.data.simulate import degrade
from samos.data.simulate.config import DegradeConfig
from samos.data.simulate.plan import Plan, apply_plan, sample_plan

RATE = 48_000
CODECS = ["opus", "g722", "mulaw"]


def _clean() -> np.ndarray:
    x = degrade.coloured_noise("pink", 2 * RATE, RATE, np.random.default_rng(0)) * 0.05
    return (x * ((np.arange(2 * RATE) // (RATE // 4)) % 2 == 0)).astype(np.float32)


def test_plans_are_seeded_and_cover_every_degradation() -> None:
    cfg = DegradeConfig()
    plans = [sample_plan(cfg, np.random.default_rng([0, i]), CODECS) for i in range(400)]
    assert plans == [sample_plan(cfg, np.random.default_rng([0, i]), CODECS) for i in range(400)]
    seen = {n for p in plans for n in p.names}
    assert seen == {"reverb", "noise", "band", "clip", "level", "codec", "loss"}
    clean = sum(not p.names for p in plans) / len(plans)
    assert abs(clean - cfg.p_clean) < 0.05
    assert {p.codec for p in plans} - {""} <= set(CODECS)
    assert {p.noise for p in plans} - {""} == set(cfg.noise_types)


def test_clean_plan_changes_nothing() -> None:
    x = _clean()
    out = apply_plan(Plan(), x, np.random.default_rng(0), 21_000.0, lambda: [])
    assert np.array_equal(out.audio, np.clip(x, -1, 1)) and out.path_bandwidth_hz == 21_000.0
    assert math.isnan(out.loss_realised) and Plan().row()["degradations"] == "clean"


def test_path_bandwidth_ignores_noise_but_sees_band_and_codec() -> None:
    x = _clean()
    noisy_lp = Plan(noise="white", snr_db=5.0, band="lowpass", band_hz=8000.0)
    out = apply_plan(noisy_lp, x, np.random.default_rng(0), 24_000.0, lambda: [])
    assert 7_500 < out.path_bandwidth_hz < 9_000
    coded = Plan(codec="mulaw", codec_kbps=64.0)
    assert apply_plan(coded, x, np.random.default_rng(0), 24_000.0, lambda: []).path_bandwidth_hz < 4_100
    src_limited = apply_plan(
        Plan(band="lowpass", band_hz=16000.0), x, np.random.default_rng(0), 10_000.0, lambda: []
    )
    assert src_limited.path_bandwidth_hz == 10_000.0


def test_full_chain_runs_and_records_loss() -> None:
    x = _clean()
    plan = Plan(
        rt60_s=0.4,
        drr_db=3.0,
        noise="babble",
        snr_db=10.0,
        band="telephone",
        band_hz=3400.0,
        clip_fraction=0.5,
        level="jumps",
        level_db=12.0,
        codec="opus",
        codec_kbps=12.0,
        loss_rate=0.1,
        loss_burst=1.5,
        loss_concealment="repeat",
    )
    talkers = [_clean()[::-1].copy(), np.roll(_clean(), 1000)]
    out = apply_plan(plan, x, np.random.default_rng(1), 24_000.0, lambda: talkers)
    assert out.audio.shape == x.shape and np.isfinite(out.audio).all() and np.abs(out.audio).max() <= 1.0
    assert 0.0 <= out.loss_realised < 0.4
    assert plan.row()["degradations"] == "reverb+noise+band+clip+level+codec+loss"
