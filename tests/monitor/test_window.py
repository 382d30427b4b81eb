from __future__ import annotations

import numpy as np
import pytest

from samos.monitor import window
from samos.monitor.normalise import Segment
from samos.monitor.pool import BufferPool
from samos.monitor.window import Window, Windower


def seg(n: int, start: int = 0, dropped: float = 0.0, t: float = 0.0) -> Segment:
    w16 = np.arange(start, start + n, dtype=np.float32)
    return Segment(w16, np.repeat(w16, 3), t, dropped, 16_000)


def feed(w: Windower, total: int, sizes: list[int]) -> list[Window]:
    out, i, k = [], 0, 0
    while i < total:
        n = min(sizes[k % len(sizes)], total - i)
        out += w.push(seg(n, i))
        i, k = i + n, k + 1
    return out + w.flush()


def test_positions_and_alignment() -> None:
    wins = feed(Windower(1.0, 0.25), 16_000 * 3, [700])
    assert [w.start for w in wins] == [i * 4000 for i in range(9)]
    for w in wins:
        assert len(w.wave16) == 16_000 and len(w.wave48) == 48_000
        assert w.wave16[0] == w.start and w.wave48[3 * 100] == w.start + 100
        assert w.t_end - w.t_start == pytest.approx(1.0)
    assert [w.index for w in wins] == list(range(9))


@pytest.mark.parametrize("hop", [0.1, 0.5, 1.0, 4.0])
def test_chunked_equals_whole(hop: float) -> None:
    rng = np.random.default_rng(1)
    total = 16_000 * 9 + 1234
    a = feed(Windower(4.0, hop), total, [total])
    b = feed(Windower(4.0, hop), total, list(rng.integers(1, 5000, 100)))
    assert [(w.start, len(w.wave16), w.final) for w in a] == [(w.start, len(w.wave16), w.final) for w in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.wave16, y.wave16)
        np.testing.assert_array_equal(x.wave48, y.wave48)


def test_final_window_covers_the_tail() -> None:
    wins = feed(Windower(4.0, 1.0), 16_000 * 10 + 8000, [320])
    last = wins[-1]
    assert last.final and last.start == 16_000 * 10 + 8000 - 64_000 and len(last.wave16) == 64_000
    assert not any(w.final for w in wins[:-1])
    # a tail under half a hop gets no extra window
    wins = feed(Windower(4.0, 1.0), 16_000 * 10 + 7000, [320])
    assert not wins[-1].final


def test_short_stream_gets_one_short_window_or_none() -> None:
    wins = feed(Windower(4.0, 1.0, min_final_seconds=1.0), 24_000, [1000])
    assert len(wins) == 1 and len(wins[0].wave16) == 24_000 and wins[0].final
    assert feed(Windower(4.0, 1.0, min_final_seconds=1.0), 8_000, [1000]) == []


def test_dropped_and_capture_time_go_to_the_window_they_precede() -> None:
    w = Windower(1.0, 1.0)
    assert w.push(seg(8000, 0, dropped=0.25, t=1.0)) == []
    (first,) = w.push(seg(8000, 8000, dropped=0.5, t=2.0))
    assert first.dropped_seconds == pytest.approx(0.75) and first.t_capture == 2.0
    (second,) = w.push(seg(16_000, 16_000, t=3.0))
    assert second.dropped_seconds == 0.0


def test_rejects_bad_geometry_and_misaligned_segments() -> None:
    with pytest.raises(ValueError):
        Windower(1.0, 2.0)
    with pytest.raises(ValueError):
        Windower(1.0, 0.5).push(Segment(np.zeros(10, np.float32), np.zeros(29, np.float32), 0.0))


@pytest.mark.parametrize("seconds", [0.0, 0.5, 0.99, 1.0, 3.3, 4.0, 4.49, 4.5, 9.75, 20.0, 20.26])
@pytest.mark.parametrize(("window", "hop", "min_final"), [(1.0, 0.5, 1.0), (4.0, 1.0, 1.0), (4.0, 0.5, 0.3)])
def test_count_is_what_push_and_flush_make(
    seconds: float, window: float, hop: float, min_final: float
) -> None:
    w = Windower(window, hop, min_final)
    n = round(seconds * 16_000)
    made = w.push(Segment(np.zeros(n, np.float32), np.zeros(3 * n, np.float32), 0.0)) + w.flush()
    assert Windower(window, hop, min_final).count(n) == len(made)


def test_lost_audio_is_counted_in_every_window_it_falls_in() -> None:
    """A 0.5 s span lost at 0.75-1.25 s: the 4 s window that covers it reports 0.5 s (ratio 0.125),
    the one that covers half of it 0.25 s, the others nothing."""
    w = Windower(4.0, 1.0)
    wins: list[Window] = []
    for i in range(0, 16_000 * 8, 4_000):
        s = seg(4_000, i)
        if i == 16_000:
            s = Segment(s.wave16, s.wave48, 0.0, 0.5, 16_000, lost=((12_000, 20_000),))
        wins += w.push(s)
    wins += w.flush()
    assert [w.t_start for w in wins] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [w.lost_seconds for w in wins] == [0.5, 0.25, 0.0, 0.0, 0.0]
    assert [w.loss_ratio for w in wins] == [0.125, 0.0625, 0.0, 0.0, 0.0]
    assert wins[0].dropped_seconds == 0.5 and wins[1].dropped_seconds == 0.0


def test_windows_are_read_only_views_that_later_pushes_leave_intact() -> None:
    w = Windower(4.0, 1.0)
    wins = feed(w, 16_000 * 30, [1600])
    assert len(wins) == 27
    # overlapping windows share one buffer (no copy per window) until it is full ...
    assert np.shares_memory(wins[0].wave48, wins[1].wave48)
    moves = sum(not np.shares_memory(a.wave16, b.wave16) for a, b in zip(wins[:-1], wins[1:], strict=True))
    assert moves < len(wins) // 4
    for x in wins:  # ... and no later push or move to a fresh buffer overwrote an earlier window
        assert not x.wave16.flags.writeable and not x.wave48.flags.writeable
        np.testing.assert_array_equal(x.wave16, np.arange(x.start, x.start + 64_000, dtype=np.float32))
        np.testing.assert_array_equal(x.wave48, np.repeat(x.wave16, 3))
    with pytest.raises(ValueError, match="read-only"):
        wins[0].wave16[0] = 1.0


def test_streams_share_buffers_and_no_window_in_flight_is_overwritten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = BufferPool(spare_bytes=8 << 20)
    monkeypatch.setattr(window, "POOL", pool)
    streams = [Windower(4.0, 1.0) for _ in range(3)]
    held: list[tuple[int, Window]] = []  # windows kept for good: their buffers must never be reused
    for i in range(0, 16_000 * 40, 1600):
        for k, w in enumerate(streams):  # each stream's samples are its own (k * 2e6 + position)
            for win in w.push(seg(1600, k * 2_000_000 + i)):
                if win.index % 9 == 0:
                    held.append((k, win))
    assert pool.reused > 10  # the streams' buffers went round once their windows were gone
    assert pool.unused_bytes() <= 8 << 20
    assert len(held) == 3 * 5
    for k, x in held:
        expected = np.arange(k * 2_000_000 + x.start, k * 2_000_000 + x.start + 64_000, dtype=np.float32)
        np.testing.assert_array_equal(x.wave16, expected)
        np.testing.assert_array_equal(x.wave48, np.repeat(expected, 3))
