"""Reused batch buffers: exact stacks, the same memory for the same key and row shape, one set per
thread, and only the most recently used kept."""

from __future__ import annotations

import threading

import numpy as np

from samos.runtime.buffers import BatchBuffers


def test_stacks_exactly_in_the_buffer_kept_for_its_key() -> None:
    rng = np.random.default_rng(0)
    buffers = BatchBuffers()
    rows = [rng.standard_normal(480).astype(np.float32) for _ in range(3)]
    a = buffers.stack(("wave16",), rows)
    np.testing.assert_array_equal(a, np.stack(rows))
    b = buffers.stack(("wave16",), rows[:2])  # a smaller batch of the same length: the same memory
    assert np.shares_memory(a, b) and b.shape == (2, 480)
    np.testing.assert_array_equal(b, np.stack(rows[:2]))
    c = buffers.stack(("wave48",), [r[:100] for r in rows])  # another key, another length: its own
    assert not np.shares_memory(a, c) and c.shape == (3, 100)
    d = buffers.stack(("wave16",), rows * 2)  # a larger batch: a new buffer, still exact
    np.testing.assert_array_equal(d, np.stack(rows * 2))
    e = buffers.stack(("wave16",), [rng.standard_normal(960)])  # another length; float64 rows
    assert e.shape == (1, 960) and e.dtype == np.float32
    frames = [rng.standard_normal((40, 8)).astype(np.float32) for _ in range(2)]  # rows of any rank
    np.testing.assert_array_equal(buffers.stack(("window", 0), frames), np.stack(frames))


def test_keeps_only_the_most_recently_used() -> None:
    buffers = BatchBuffers()
    first = buffers.take(("a",), (2, 10))
    assert np.shares_memory(first, buffers.take(("a",), (2, 10)))
    for n in range(BatchBuffers.KEEP):  # as many other row shapes as are kept: "a" is the oldest
        buffers.take(("a",), (2, 11 + n))
    assert not np.shares_memory(first, buffers.take(("a",), (2, 10)))


def test_each_thread_has_its_own_buffers() -> None:
    buffers = BatchBuffers()
    mine = buffers.take(("x",), (4, 64))
    theirs: list[np.ndarray] = []
    t = threading.Thread(target=lambda: theirs.append(buffers.take(("x",), (4, 64))))
    t.start()
    t.join(10)
    assert theirs and not np.shares_memory(mine, theirs[0])
    assert np.shares_memory(mine, buffers.take(("x",), (4, 64)))
