"""The stream path's buffer pool: a buffer is lent again only once nothing views it."""

from __future__ import annotations

import numpy as np

from samos.monitor.pool import MIN_SAMPLES, STEP, BufferPool, concatenate

N = MIN_SAMPLES + 100


def test_a_buffer_is_lent_again_only_once_nothing_views_it() -> None:
    pool = BufferPool()
    a = pool.lend(N)
    assert a.shape == (N,) and a.dtype == np.float32
    a[:] = 7.0
    window = a[2:5]  # a window still in flight
    del a
    b = pool.lend(N)
    assert not np.shares_memory(b, window) and pool.reused == 0
    del b  # unused now: lent again, to a request of any size in the same step
    c = pool.lend(N + 1)
    assert pool.reused == 1 and c.shape == (N + 1,)
    del window
    d = pool.lend(N - 50)
    assert pool.reused == 2 and np.all(d == 7.0)  # the first buffer, as it was left
    assert pool.lend(N + STEP).size == N + STEP and pool.reused == 2  # a larger step: a new one
    assert pool.lent == 5 and len(pool) == 3


def test_small_requests_are_not_pooled_and_unused_buffers_are_bounded() -> None:
    pool = BufferPool(spare_bytes=3 * 4 * (MIN_SAMPLES + STEP))
    small = pool.lend(100)
    assert small.base is None and len(pool) == 0
    held = [pool.lend(MIN_SAMPLES + k * STEP) for k in range(8)]  # eight sizes, all in use
    assert len(pool) == 8 and pool.unused_bytes() == 0
    del held
    new = pool.lend(MIN_SAMPLES + 20 * STEP)  # a new size: the oldest unused go until the rest fit
    assert 0 < pool.unused_bytes() <= 3 * 4 * (MIN_SAMPLES + STEP) and new.size


def test_concatenate_is_numpy_s_into_a_lent_buffer() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal(n).astype(np.float32) for n in (4800, 30_000, 9600)]
    out = concatenate(parts)
    np.testing.assert_array_equal(out, np.concatenate(parts))
    assert out.base is not None  # a view of a pooled buffer (44,400 samples is above MIN_SAMPLES)


def test_trim_lets_go_of_unused_buffers_beyond_the_spare() -> None:
    pool = BufferPool(spare_bytes=4 * (MIN_SAMPLES + STEP))
    held = [pool.lend(MIN_SAMPLES + k * STEP) for k in range(4)]
    keep = held[0]
    del held  # three of four come free after they were made: nothing made since trimmed them
    assert pool.unused_bytes() == 4 * sum(MIN_SAMPLES + k * STEP for k in (1, 2, 3))
    pool.trim()
    assert pool.unused_bytes() <= 4 * (MIN_SAMPLES + STEP) and len(pool) <= 2 and keep.size


def test_at_most_most_buffers_are_tracked_and_one_forgotten_is_never_lent_again() -> None:
    pool = BufferPool(most=3)
    held = [pool.lend(N) for _ in range(5)]  # all in use: the pool forgets the oldest
    assert len(pool) == 3
    for h in held:
        h[:] = 1.0
    del h
    first = held.pop(0)  # forgotten by the pool: stays this caller's alone
    held.clear()
    again = [pool.lend(N) for _ in range(3)]
    assert pool.reused == 3 and not any(np.shares_memory(first, a) for a in again)
