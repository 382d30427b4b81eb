"""Batch buffers reused from call to call, so that batching windows does not cost fresh memory.

A batch of windows, frames or audio is hundreds of KB to a few MB (16 windows of 4 s at 48 kHz:
12 MB), and the monitor maps every block of 128 KiB or more on its own (samos.monitor.heap): a
fresh one is faulted in page by page, 4 KB at a time, and given back when freed. The inference
worker and the incremental engine therefore stack into buffers kept here. One set per thread, so
scorers shared by several threads never write into one another's batch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np


class BatchBuffers(threading.local):
    """float32 buffers by key and row shape, one set per thread; the ``KEEP`` most recently used are
    kept. An array returned is valid until the next call with the same key and row shape."""

    KEEP = 8

    def __init__(self) -> None:
        self._buffers: dict[tuple[object, ...], np.ndarray] = {}

    def take(self, key: tuple[object, ...], shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised float32 array of ``shape`` ``[B, ...]``: a view of the buffer kept for
        ``key`` and the row shape ``shape[1:]`` (a new one when that buffer has fewer than B rows)."""
        k = (*key, *shape[1:])
        buf = self._buffers.pop(k, None)
        if buf is None or len(buf) < shape[0]:
            buf = np.empty(shape, np.float32)
        self._buffers[k] = buf  # the most recently used last
        while len(self._buffers) > self.KEEP:
            del self._buffers[next(iter(self._buffers))]
        return buf[: shape[0]]

    def stack(self, key: tuple[object, ...], rows: Sequence[np.ndarray]) -> np.ndarray:
        """``rows`` (each ``[T, ...]``, one shape) stacked into ``[B, T, ...]`` float32, in the
        buffer :meth:`take` gives for ``key``."""
        return np.stack(rows, out=self.take(key, (len(rows), *np.shape(rows[0]))))


__all__ = ["BatchBuffers"]
