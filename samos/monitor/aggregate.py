"""Rolling MOS of a stream: the windows scored in the last ``horizon_seconds`` of stream time.

``mean``: plain mean of the window MOS; the rolling std is the RMS of the window stds.
``inverse_variance``: windows weighted by 1/std^2 (confident windows count more); the rolling std is
sqrt(n / sum(1/std^2)), the harmonic-mean variance.

In both cases the std is NOT divided by sqrt(n): overlapping windows share audio, so their errors are
not independent and averaging them does not make the estimate n times surer. Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

MIN_STD = 1e-3


@dataclass(frozen=True)
class Rolling:
    """The rolling estimate: ``mos`` and ``std`` (MOS units) over ``count`` windows (None when none)."""

    mos: float | None
    std: float | None
    count: int


class RollingMos:
    """Rolling MOS over windows whose end lies within the last ``horizon_seconds`` (stream time)."""

    def __init__(self, horizon_seconds: float, weighting: str = "mean") -> None:
        if horizon_seconds <= 0:
            raise ValueError(f"horizon_seconds must be > 0, got {horizon_seconds}")
        if weighting not in ("mean", "inverse_variance"):
            raise ValueError(f"weighting must be 'mean' or 'inverse_variance', got {weighting!r}")
        self.horizon = horizon_seconds
        self.weighting = weighting
        self._items: deque[tuple[float, float, float]] = deque()  # (t_end, mos, std)
        self._now = 0.0

    def push(self, t_end: float, mos: float | None = None, std: float | None = None) -> Rolling:
        """Advance stream time to ``t_end`` (s); add a scored window when ``mos`` is given."""
        self._now = max(self._now, t_end)
        if mos is not None and np.isfinite(mos):
            s = std if std is not None and np.isfinite(std) else MIN_STD
            self._items.append((t_end, float(mos), max(float(s), MIN_STD)))
        while self._items and self._items[0][0] <= self._now - self.horizon:
            self._items.popleft()
        return self.value

    @property
    def value(self) -> Rolling:
        if not self._items:
            return Rolling(None, None, 0)
        m = np.array([x[1] for x in self._items])
        v = np.array([x[2] for x in self._items]) ** 2
        if self.weighting == "mean":
            return Rolling(float(m.mean()), float(np.sqrt(v.mean())), len(m))
        w = 1.0 / v
        return Rolling(float((w * m).sum() / w.sum()), float(np.sqrt(len(w) / w.sum())), len(m))
