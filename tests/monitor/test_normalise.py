from __future__ import annotations

import numpy as np
import pytest
from fake_source import split

from samos.audio import resample
from samos.monitor.normalise import Normaliser
from samos.monitor.source import AudioChunk


def run(audio: np.ndarray, rate: int, sizes: list[int] | int) -> tuple[np.ndarray, np.ndarray]:
    n = Normaliser(rate)
    segs = [n.push(AudioChunk(p, rate)) for p in split(audio, sizes)] + [n.flush()]
    for s in segs:
        assert len(s.wave48) == 3 * len(s.wave16)
    return np.concatenate([s.wave16 for s in segs]), np.concatenate([s.wave48 for s in segs])


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000])
def test_chunked_equals_one_shot(rate: int) -> None:
    rng = np.random.default_rng(rate)
    audio = (rng.standard_normal(rate * 2) * 0.1).astype(np.float32)
    sizes = list(rng.integers(1, 2000, size=400))
    a16, a48 = run(audio, rate, sizes)
    b16, b48 = run(audio, rate, [len(audio)])
    np.testing.assert_array_equal(a16, b16)
    np.testing.assert_array_equal(a48, b48)
    ref16, ref48 = resample(audio, rate, 16_000), resample(audio, rate, 48_000)
    n = len(a16)
    assert abs(n - len(ref16)) <= 1
    np.testing.assert_array_equal(a16, ref16[:n])
    np.testing.assert_array_equal(a48, ref48[: 3 * n])


def test_int16_stereo_is_downmixed_and_scaled() -> None:
    x = np.zeros((4800, 2), dtype=np.int16)
    x[:, 0] = 16384  # 0.5 on the left, silence on the right: mono is 0.25
    w16, w48 = run(x, 48_000, 1000)
    assert abs(float(np.median(w48)) - 0.25) < 1e-3
    assert w16.dtype == np.float32 and w48.dtype == np.float32


def test_non_finite_samples_become_zero_and_are_counted() -> None:
    n = Normaliser(16_000)
    x = np.ones(1600, np.float32) * 0.1
    x[[3, 70]] = [np.nan, np.inf]
    seg = n.push(AudioChunk(x, 16_000))
    assert seg.invalid == 2 and np.isfinite(seg.wave48).all()


def test_rate_change_restarts_resamplers() -> None:
    n = Normaliser(16_000)
    a = n.push(AudioChunk(np.zeros(16_000, np.float32), 16_000))
    b = n.push(AudioChunk(np.zeros(48_000, np.float32), 48_000))
    c = n.flush()
    total = sum(len(s.wave16) for s in (a, b, c))
    assert n.rate == 48_000 and abs(total - 32_000) <= 2


def test_dropped_is_reported_in_seconds() -> None:
    seg = Normaliser(48_000).push(AudioChunk(np.zeros(960, np.float32), 48_000, dropped=4800))
    assert seg.dropped_seconds == pytest.approx(0.1)


@pytest.mark.parametrize("rate", [8_000, 44_100, 48_000])
def test_lost_audio_becomes_silence_at_its_place(rate: int) -> None:
    """``dropped`` samples come back as that much silence before the chunk, exactly as if the sender
    had sent zeros; the segment names the lost span in 16 kHz stream samples."""
    rng = np.random.default_rng(2)
    a = (rng.standard_normal(rate) * 0.1).astype(np.float32)
    b = (rng.standard_normal(rate // 2) * 0.1).astype(np.float32)
    gap = rate // 10  # 100 ms lost between a and b
    n = Normaliser(rate)
    segs = [n.push(AudioChunk(a, rate)), n.push(AudioChunk(b, rate, dropped=gap)), n.flush()]
    got16 = np.concatenate([s.wave16 for s in segs])
    ref16, _ = run(np.concatenate([a, np.zeros(gap, np.float32), b]), rate, [len(a) + gap + len(b)])
    np.testing.assert_array_equal(got16, ref16)
    assert segs[0].lost == () and segs[1].lost == ((16_000, 17_600),)
    assert segs[1].dropped_seconds == pytest.approx(0.1)


def test_concealed_samples_are_kept_and_named_lost() -> None:
    n = Normaliser(48_000)
    x = np.full(4_800, 0.1, np.float32)
    first = n.push(AudioChunk(x, 48_000))
    second = n.push(AudioChunk(x, 48_000, concealed=960))  # its first 20 ms are codec concealment
    total = len(first.wave16) + len(second.wave16) + len(n.flush().wave16)
    assert total == 3_200  # nothing added, nothing removed
    assert second.lost == ((1_600, 1_920),) and second.dropped_seconds == pytest.approx(0.02)


def test_a_gap_longer_than_the_cap_is_cut_to_it() -> None:
    n = Normaliser(16_000, max_gap_seconds=0.5)
    first = n.push(AudioChunk(np.zeros(1_600, np.float32), 16_000))
    seg = n.push(AudioChunk(np.zeros(1_600, np.float32), 16_000, dropped=16_000 * 60))
    assert seg.lost == ((1_600, 9_600),) and seg.dropped_seconds == pytest.approx(60.0)
    total = len(first.wave16) + len(seg.wave16) + len(n.flush().wave16)
    assert total == 2 * 1_600 + 8_000  # 0.5 s of silence for the 60 s gap


def test_lost_spans_follow_a_rate_change() -> None:
    n = Normaliser(16_000)
    n.push(AudioChunk(np.zeros(16_000, np.float32), 16_000))
    seg = n.push(AudioChunk(np.zeros(4_800, np.float32), 48_000, dropped=4_800))
    assert seg.lost == ((16_000, 17_600),)


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_samples_beyond_any_audio_are_clipped_so_that_segments_stay_finite(rate: int) -> None:
    # float32 holds up to 3.4e38: a resampler's sums over such samples would overflow to Inf
    x = np.full(rate // 2, 3e38, np.float32)
    x[::2] *= -1
    seg = Normaliser(rate).push(AudioChunk(x, rate))
    assert seg.invalid == 0 and len(seg.wave48)
    assert np.isfinite(seg.wave16).all() and np.isfinite(seg.wave48).all()
    assert np.abs(seg.wave48).max() > 1e29


def test_same_rate_segments_do_not_keep_a_view_of_the_chunk() -> None:
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(48_000 * 2) * 0.1).astype(np.float32)
    ref16, ref48 = run(audio, 48_000, 4800)
    n = Normaliser(48_000)
    out16, out48 = [], []
    for part in split(audio, 4800):
        buf = part.copy()
        seg = n.push(AudioChunk(buf, 48_000))
        out16.append(seg.wave16.copy())
        out48.append(seg.wave48.copy())
        buf[:] = np.nan  # no source does this (AudioChunk), but the normaliser does not rely on it
    seg = n.flush()
    out16.append(seg.wave16)
    out48.append(seg.wave48)
    # what the normaliser held back for the next push was its own copy, not the overwritten buffer
    np.testing.assert_array_equal(np.concatenate(out16), ref16)
    np.testing.assert_array_equal(np.concatenate(out48), ref48)
