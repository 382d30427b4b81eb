"""Opt-in memory reports of the monitor process (for finding growth in a soak). Off by default.

``SAMOS_TRACEMALLOC="PATH@T0,T1,..."`` in the monitor's environment appends to ``PATH`` one report
``T0``, ``T1``, .. seconds after the event loop starts (monotonic): the process's RSS (MB, Linux
``/proc``); glibc's heap (``mallinfo2``, all arenas: bytes in use, free but kept, and in mmapped
chunks), where glibc is the C library; live Python objects by type and asyncio tasks. With
``SAMOS_TRACEMALLOC_FRAMES=N`` (N >= 1) :mod:`tracemalloc` runs from the start with N frames per
traceback, and each report adds the traced total and peak (MB) and the allocations that grew most
since ``T0``, by line and by traceback.

How to read them: Python-level growth (numpy arrays included) shows in the traced total; glibc's
``in_use`` growing while that stays flat is native code holding memory (onnxruntime, libopus,
FFmpeg, libuv); ``free`` growing is memory freed but kept by the allocator (fragmentation).

tracemalloc costs CPU (every allocation is recorded) and its snapshots block the event loop for a
while (long enough, on a loaded machine, for websocket clients' keep-alive pings to time out): for
diagnosis only, never in production. A malformed value is a :class:`ValueError` naming it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from samos.monitor import heap as _heap

ENV = "SAMOS_TRACEMALLOC"
FRAMES_ENV = "SAMOS_TRACEMALLOC_FRAMES"
log = logging.getLogger(__name__)
TOP = 25
"""Lines of each ranking in a report."""


@dataclass(frozen=True)
class TraceSpec:
    """Where the reports go and when (seconds after start, increasing; the first is the baseline)."""

    path: Path
    times: tuple[float, ...]
    frames: int = 0
    """tracemalloc's frames per traceback (0: no tracemalloc)."""

    @classmethod
    def parse(cls, value: str, frames: str | None = None) -> TraceSpec:
        """``"PATH@T0,T1,.."`` (and the frame count's text) -> spec; ValueError when malformed."""
        path, sep, when = value.rpartition("@")
        try:
            times = tuple(float(t) for t in when.split(",") if t.strip())
            depth = int(frames) if frames else 0
        except ValueError:
            times, depth = (), 0
        if (
            not sep
            or not path
            or len(times) < 2
            or any(b <= a for a, b in zip(times, times[1:], strict=False))
        ):
            raise ValueError(f"{ENV} must be PATH@T0,T1,.. (at least two increasing times, s), got {value!r}")
        if times[0] < 0 or not 0 <= depth <= 100:
            raise ValueError(f"{ENV}: times must be >= 0 and {FRAMES_ENV} in [0, 100]")
        return cls(Path(path), times, depth)

    @classmethod
    def from_env(cls) -> TraceSpec | None:
        """The spec in the environment, or None when tracing is off."""
        value = os.environ.get(ENV)
        return cls.parse(value, os.environ.get(FRAMES_ENV)) if value else None


def rss_mb() -> float | None:
    """Resident set size of this process, MB (None where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def header(at: float) -> list[str]:
    """The lines every report has: RSS, glibc's heap, tracemalloc's totals, objects, tasks."""
    rss = rss_mb()
    heap = _heap.stats()
    types = Counter(type(o).__name__ for o in gc.get_objects())
    line = f"== t={at:.0f} s rss_mb={rss if rss is None else round(rss, 1)}"
    if heap is not None:
        line += f" malloc_in_use_mb={heap.in_use} malloc_free_mb={heap.free} malloc_mmapped_mb={heap.mmapped}"
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        line += f" traced_mb={current / 2**20:.1f} traced_peak_mb={peak / 2**20:.1f}"
    line += f" objects={sum(types.values())} tasks={len(asyncio.all_tasks())}"
    return [line, "-- object types: " + ", ".join(f"{k} {v}" for k, v in types.most_common(12))]


def growth(base: tracemalloc.Snapshot, snap: tracemalloc.Snapshot) -> list[str]:
    """The allocations that grew most from ``base`` to ``snap``, by line and by traceback."""
    lines = ["-- growth by line since the first report:"]
    lines += [f"   {s}" for s in snap.compare_to(base, "lineno")[:TOP]]
    lines.append("-- growth by traceback (top 8):")
    for s in snap.compare_to(base, "traceback")[:8]:
        lines.append(f"   {s.size_diff / 1024:+.1f} KiB, {s.count_diff:+d} blocks")
        lines += [f"      {f}" for f in s.traceback.format()[-2 * 6 :]]
    return lines


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        ]
    )


async def trace(spec: TraceSpec) -> None:
    """Take the snapshots at ``spec.times`` and append the reports to ``spec.path`` (run as a task)."""
    if spec.frames and not tracemalloc.is_tracing():
        tracemalloc.start(spec.frames)
    t0 = time.monotonic()
    base: tracemalloc.Snapshot | None = None
    for at in spec.times:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        lines = header(at)
        if tracemalloc.is_tracing():
            snap = _snapshot()
            if base is None:
                base = snap
            else:
                lines += growth(base, snap)
        text = "\n".join(lines) + "\n"
        try:
            with spec.path.open("a") as f:
                f.write(text)
        except OSError as e:  # the monitor goes on without its reports
            log.warning("%s: cannot write %s (%s); memory tracing stopped", ENV, spec.path, e)
            return
