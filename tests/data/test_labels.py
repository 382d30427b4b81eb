"""Pseudo-MOS labels: E-model pieces, the combination, and the real Distill-MOS teacher on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from samos.audio import SPEC_RATE, load_audio, resample
from samos.data.simulate import degrade
from samos.data.simulate.labels import (
    BANDWIDTH_ANCHORS,
    Labeller,
    combine,
    high_band_credit,
    mos_from_r,
    r_from_mos,
    r_max,
)
from samos.data.simulate.measure import effective_bandwidth_hz

CLEAN = Path("/work/shared/data/p835/clean48k/f1.wav")
KLETTRES = Path("/usr/share/klettres/en/syllab")


def test_g107_curve_endpoints_and_inverse() -> None:
    assert float(mos_from_r(0)) == 1.0 and float(mos_from_r(3.0)) == 1.0  # the cubic's dip is clamped
    assert np.all(np.diff(mos_from_r(np.linspace(0, 120, 500))) >= 0)
    assert float(mos_from_r(100)) == 4.5
    assert float(mos_from_r(93.2)) == pytest.approx(4.41, abs=0.01)  # the G.107 default connection
    for m in (1.2, 2.0, 3.0, 4.0, 4.4):
        assert float(mos_from_r(r_from_mos(m))) == pytest.approx(m, abs=1e-3)


def test_bandwidth_ceiling_hits_the_published_anchors_and_is_monotone() -> None:
    for bw, r in BANDWIDTH_ANCHORS:
        assert r_max(bw) == pytest.approx(r)
    values = [r_max(b) for b in (1000, 2000, 3400, 5000, 7000, 8000, 12000, 16000, 20000, 24000)]
    assert values == sorted(values)
    assert r_max(24000) == r_max(20000) == 148.0
    assert high_band_credit(8000) == 0.0 and high_band_credit(4000) == 0.0
    assert high_band_credit(20000) == pytest.approx(148.0 - r_max(8000))


@pytest.mark.parametrize("teacher", [1.0, 1.5, 2.5, 3.5, 4.2, 5.0])
def test_combination_is_bounded_and_monotone(teacher: float) -> None:
    by_bw = [combine(teacher, bw) for bw in (3400, 8000, 12000, 16000, 20000)]
    assert all(1.0 <= m <= 5.0 for m in by_bw)
    assert by_bw == sorted(by_bw)
    assert combine(teacher, 20000) >= combine(max(1.0, teacher - 0.5), 20000)
    assert combine(teacher, 8000, high_band=False) == combine(teacher, 20000, high_band=False)


def _speech() -> np.ndarray:
    if CLEAN.exists():
        audio, sr = load_audio(CLEAN)
    elif KLETTRES.is_dir():
        parts = [load_audio(p) for p in sorted(KLETTRES.glob("*.ogg"))[:6]]
        audio, sr = np.concatenate([a for a, _ in parts]), parts[0][1]
    else:
        pytest.skip("no clean full-band speech on this machine")
    return resample(audio, sr, SPEC_RATE)[: 5 * SPEC_RATE]


@pytest.fixture(scope="module")
def labeller() -> Labeller:
    pytest.importorskip("distillmos")
    import torch

    torch.set_num_threads(1)
    from samos.data.simulate.labels import DistillMOS

    return Labeller(DistillMOS())


def test_labels_order_clearly_better_and_worse_versions(labeller: Labeller) -> None:
    clean = _speech()
    lp8 = degrade.lowpass(clean, SPEC_RATE, 8000)
    lp4 = degrade.lowpass(clean, SPEC_RATE, 4000)
    noise = degrade.coloured_noise("white", len(lp4), SPEC_RATE, np.random.default_rng(0))
    lp4_noisy = degrade.add_noise(lp4, SPEC_RATE, noise, 5.0)
    versions = [clean, lp8, lp4, lp4_noisy]
    labels = [
        labeller.label(x, effective_bandwidth_hz(y, SPEC_RATE))
        for x, y in zip(versions, [clean, lp8, lp4, lp4], strict=True)
    ]
    mos = [lab.mos for lab in labels]
    assert mos[0] > mos[1] > mos[2] > mos[3], mos
    assert all(1.0 <= m <= 5.0 for m in mos)
    # the 8 kHz low-pass measures a little above 8 kHz (its transition band): at most a sliver of credit
    assert labels[0].high_band_r > 10 and labels[1].high_band_r < 1.5 and labels[2].high_band_r == 0.0
    again = labeller.label(lp4_noisy, effective_bandwidth_hz(lp4, SPEC_RATE))
    assert again == labels[3]  # deterministic


def test_whole_clip_teacher_is_the_package_model_without_its_padding() -> None:
    """``whole_clip`` runs samos's rebuild of Distill-MOS: on the zero-padded 7.68 s window it gives
    the package's own score, and on the clip as it is a score of its own (the padding is gone)."""
    pytest.importorskip("distillmos")
    import torch

    from samos.data.simulate.labels import DISTILLMOS_WINDOW, DistillMOS

    torch.set_num_threads(1)
    clip = resample(_speech()[: 4 * SPEC_RATE], SPEC_RATE, 16_000)  # 4 s: the package pads 3.68 s
    padded = np.zeros(DISTILLMOS_WINDOW, np.float32)
    padded[: len(clip)] = clip
    package, whole = DistillMOS(), DistillMOS(whole_clip=True)
    with torch.inference_mode():
        rebuilt = float(whole._unpadded(torch.from_numpy(padded)[None]).item())
    assert rebuilt == pytest.approx(package.score(clip, 16_000), abs=2e-4)
    assert whole.score(padded, 16_000) == pytest.approx(package.score(padded, 16_000), abs=1e-6)
    own = whole.score(clip, 16_000)
    assert 1.0 <= own <= 5.0 and abs(own - rebuilt) > 1e-3
    noisy = degrade.add_noise(
        clip, 16_000, degrade.coloured_noise("white", len(clip), 16_000, np.random.default_rng(0)), 0.0
    )
    assert whole.score(noisy, 16_000) < own - 1.0
    short_only = DistillMOS(whole_clip=True)  # clips under one window never load the package's model
    assert short_only.score(clip, 16_000) == pytest.approx(own, abs=1e-6)
    assert short_only._model is None


def test_teacher_ids_keep_caches_apart() -> None:
    from samos.data.simulate.corpus import teacher_id

    assert teacher_id("distillmos").startswith("distillmos-")
    assert teacher_id("distillmos_whole") == "distillmos_whole-" + teacher_id("distillmos").split("-", 1)[1]
    assert teacher_id("none") == "none"


class _CountingTeacher:
    def __init__(self) -> None:
        self.calls = 0

    def score(self, audio: np.ndarray, rate: int) -> float:
        self.calls += 1
        return 1.0 + float(np.abs(audio).mean()) * 10


def test_teacher_cache_scores_each_clip_once(tmp_path) -> None:  # noqa: ANN001
    from samos.data.simulate.labels import Labeller, TeacherCache

    teacher = _CountingTeacher()
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(4800).astype(np.float32) * 0.1 for _ in range(2))
    first = Labeller(teacher, cache=TeacherCache(tmp_path, "t"))  # type: ignore[arg-type]
    la, lb = first.label(a, 20_000.0), first.label(b, 20_000.0)
    assert teacher.calls == 2 and la.teacher_mos != lb.teacher_mos
    again = Labeller(teacher, cache=TeacherCache(tmp_path, "t"))  # type: ignore[arg-type]  # a new process
    assert again.label(a, 20_000.0) == la and again.label(b, 8_000.0).teacher_mos == lb.teacher_mos
    assert teacher.calls == 2 and again.cache is not None and again.cache.hits == 2
    other = Labeller(teacher, cache=TeacherCache(tmp_path, "another-teacher"))  # type: ignore[arg-type]
    other.label(a, 20_000.0)
    assert teacher.calls == 3  # the key includes the teacher


def test_dnsmos_bak_is_blended_with_the_teacher_before_the_bandwidth_term(tmp_path) -> None:  # noqa: ANN001
    """labels.bak_weight: the real DNSMOS BAK on real speech, mixed into the teacher's MOS, then the
    E-model credit; noise lowers BAK; the score is cached like the teacher's."""
    pytest.importorskip("speechmos")
    from samos.data.simulate.labels import DnsmosBak, TeacherCache

    clean = _speech()
    noise = degrade.coloured_noise("white", len(clean), SPEC_RATE, np.random.default_rng(0))
    noisy = degrade.add_noise(clean, SPEC_RATE, noise, 0.0)
    teacher = _CountingTeacher()
    bak = DnsmosBak()
    labeller = Labeller(
        teacher,  # type: ignore[arg-type]
        bak=bak,
        bak_weight=0.25,
        bak_cache=TeacherCache(tmp_path, "dnsmos-bak"),
    )
    quiet, loud = labeller.label(clean, 20_000.0), labeller.label(noisy, 20_000.0)
    assert quiet.dnsmos_bak is not None and loud.dnsmos_bak is not None
    assert 1.0 <= loud.dnsmos_bak < quiet.dnsmos_bak - 1.0 <= 4.0, (quiet.dnsmos_bak, loud.dnsmos_bak)
    for lab in (quiet, loud):
        assert lab.dnsmos_bak is not None
        assert lab.mos == pytest.approx(combine(0.75 * lab.teacher_mos + 0.25 * lab.dnsmos_bak, 20_000.0))
    assert labeller.label(noisy, 20_000.0) == loud and labeller.bak_cache.hits == 1  # type: ignore[union-attr]
    plain = Labeller(teacher).label(noisy, 20_000.0)  # type: ignore[arg-type]
    assert plain.dnsmos_bak is None and plain.mos == pytest.approx(combine(plain.teacher_mos, 20_000.0))
    with pytest.raises(ValueError, match="bak_weight"):
        Labeller(teacher, bak=bak, bak_weight=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="DnsmosBak"):
        Labeller(teacher, bak_weight=0.25)  # type: ignore[arg-type]
