"""Drawing and applying degradation plans."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samos.data.simulate import degrade, opus, room
from samos.data.simulate.config import DegradeConfig
from samos.data.simulate.noises import NoiseBank
from samos.data.simulate.plan import Plan, apply_plan, sample_plan

RATE = 48_000
CODECS = ["opus", "g722", "mulaw"]
ALL_STAGES = {
    "reverb", "talker", "echo", "noise", "band", "clip", "suppressor", "agc", "level", "codec",
    "bwswitch", "loss", "jitter", "playback_clip",
}  # fmt: skip


def _clean() -> np.ndarray:
    x = degrade.coloured_noise("pink", 2 * RATE, RATE, np.random.default_rng(0)) * 0.05
    return (x * ((np.arange(2 * RATE) // (RATE // 4)) % 2 == 0)).astype(np.float32)


def _others(n: int) -> list[np.ndarray]:
    return [np.roll(_clean(), 1000 * (k + 1)) for k in range(n)]


def test_plans_are_seeded_and_cover_every_degradation() -> None:
    cfg = DegradeConfig()
    plans = [sample_plan(cfg, np.random.default_rng([0, i]), CODECS, libopus=True) for i in range(600)]
    assert plans == [
        sample_plan(cfg, np.random.default_rng([0, i]), CODECS, libopus=True) for i in range(600)
    ]
    seen = {n for p in plans for n in p.names}
    assert seen == ALL_STAGES
    clean = sum(not p.names for p in plans) / len(plans)
    assert abs(clean - cfg.p_clean) < 0.05
    assert {p.codec for p in plans} - {""} <= set(CODECS)
    assert {p.noise for p in plans} - {""} == set(cfg.noise_types)
    lossy = [p for p in plans if p.loss_concealment]
    assert {p.loss_concealment for p in lossy} == {"plc", "plc+fec", "zero", "repeat"}
    # real PLC only where a real decoder runs, and bandwidth switches only in Opus calls
    assert all(p.codec_impl == "libopus" for p in lossy if p.loss_concealment.startswith("plc"))
    assert all(p.codec == "opus" for p in plans if p.bw_switch_hz)
    assert {p.loss_model for p in lossy} == {"random", "gilbert_elliott"}
    assert {p.echo_path for p in plans if p.echo} == {"pyroomacoustics" if room.available() else "synthetic"}
    assert all(p.noise for p in plans if p.ns_oversubtract == p.ns_oversubtract)  # suppressors need noise


def test_without_libopus_no_plc_and_no_switch() -> None:
    cfg = DegradeConfig()
    plans = [sample_plan(cfg, np.random.default_rng([1, i]), ["g722", "mulaw"]) for i in range(300)]
    assert not any(p.bw_switch_hz or p.loss_concealment.startswith("plc") for p in plans)
    assert {p.loss_concealment for p in plans if p.loss_concealment} == {"zero", "repeat"}


def test_clean_plan_changes_nothing() -> None:
    x = _clean()
    out = apply_plan(Plan(), x, np.random.default_rng(0), 21_000.0, _others)
    assert np.array_equal(out.audio, np.clip(x, -1, 1)) and out.path_bandwidth_hz == 21_000.0
    assert math.isnan(out.loss_realised) and Plan().row()["degradations"] == "clean"


def test_path_bandwidth_ignores_noise_but_sees_band_and_codec() -> None:
    x = _clean()
    noisy_lp = Plan(noise="white", snr_db=5.0, band="lowpass", band_hz=8000.0)
    out = apply_plan(noisy_lp, x, np.random.default_rng(0), 24_000.0, _others)
    assert 7_500 < out.path_bandwidth_hz < 9_000
    coded = Plan(codec="mulaw", codec_kbps=64.0, codec_impl="pyav")
    assert apply_plan(coded, x, np.random.default_rng(0), 24_000.0, _others).path_bandwidth_hz < 4_100
    src_limited = apply_plan(
        Plan(band="lowpass", band_hz=16000.0), x, np.random.default_rng(0), 10_000.0, _others
    )
    assert src_limited.path_bandwidth_hz == 10_000.0


@pytest.mark.skipif(not opus.available(), reason="libopus is not installed")
def test_bandwidth_switch_counts_the_narrower_part() -> None:
    plan = Plan(
        codec="opus", codec_kbps=32.0, codec_impl="libopus", bw_switch_hz="20000>4000", bw_switch_s=0.5
    )
    out = apply_plan(plan, _clean(), np.random.default_rng(0), 24_000.0, _others)
    assert out.path_bandwidth_hz < 9_500  # the full-band first half does not count


def test_full_chain_runs_and_records_what_it_applied() -> None:
    x = _clean()
    lib = opus.available()
    plan = Plan(
        room="pyroomacoustics" if room.available() else "synthetic",
        rt60_s=0.4,
        drr_db=3.0,
        room_dist_m=1.0,
        talker2="competing",
        sir_db=10.0,
        echo="double_talk",
        echo_delay_s=0.1,
        echo_loss_db=15.0,
        echo_rt60_s=0.2,
        echo_drive_db=6.0,
        echo_path="pyroomacoustics" if room.available() else "synthetic",
        noise="recorded",
        snr_db=10.0,
        band="telephone",
        band_hz=3400.0,
        clip_fraction=0.5,
        ns_oversubtract=3.0,
        ns_floor_db=-25.0,
        agc_max_gain_db=20.0,
        agc_release_s=1.0,
        level="jumps",
        level_db=12.0,
        codec="opus",
        codec_kbps=12.0,
        codec_impl="libopus" if lib else "pyav",
        bw_switch_hz="12000>8000" if lib else "",
        bw_switch_s=0.5,
        loss_rate=0.1,
        loss_burst=2.0,
        loss_model="gilbert_elliott",
        loss_bad=0.8,
        loss_concealment="plc+fec" if lib else "repeat",
        jitter_spikes=1,
        jitter_s=0.05,
        playback_gain_db=10.0,
    )
    bank = NoiseBank(("fan",), (degrade.coloured_noise("brown", RATE, RATE, np.random.default_rng(9)),))
    out = apply_plan(plan, x, np.random.default_rng(1), 24_000.0, _others, noise_bank=bank)
    assert out.audio.shape == x.shape and np.isfinite(out.audio).all() and np.abs(out.audio).max() <= 1.0
    assert 0.0 <= out.loss_realised < 0.5
    assert out.plan.noise == "recorded:fan"
    assert set(plan.names) == ALL_STAGES - ({"bwswitch"} if not lib else set())
    with pytest.raises(ValueError, match="noise bank"):
        apply_plan(Plan(noise="recorded", snr_db=5.0), x, np.random.default_rng(1), 24_000.0, _others)


def test_jitter_spikes_sit_where_losses_start() -> None:
    from samos.data.simulate.plan import _spike_times

    lost = np.zeros(300, bool)
    lost[[40, 41, 90, 200]] = True  # bursts start at 0.8, 1.8 and 4.0 s
    t = _spike_times(2, 6.0, lost, np.random.default_rng(0))
    assert set(np.round(t, 3)) <= {0.8, 1.8, 4.0}
    anywhere = _spike_times(3, 6.0, None, np.random.default_rng(0))
    assert len(anywhere) == 3 and np.all((anywhere >= 0.3) & (anywhere <= 4.5))
