"""CPU time of a process and of its threads, from Linux /proc: what ``samos bench soak`` measures
the monitor with (``cpu_s_per_stream_s``, ``cpu_by_thread``)."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_cpu(stat: str) -> tuple[str, float]:
    """``(name, user + system CPU seconds)`` of one ``/proc/.../stat`` line (the name may hold
    spaces and parentheses: it runs to the last ``)``)."""
    head, _, rest = stat.rpartition(")")
    fields = rest.split()
    return head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process."""
    return _stat_cpu(Path(f"/proc/{pid}/stat").read_text())[1]


def thread_readings(pid: int) -> dict[int, tuple[str, float]]:
    """``{thread id: (name, user + system CPU seconds)}`` of a process's live threads: ``main`` for the
    main thread (the monitor's event loop), else the OS name (``samos.monitor.osthread``); empty when
    the process is gone."""
    out: dict[int, tuple[str, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            name, cpu = _stat_cpu((task / "stat").read_text())
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = ("main" if task.name == str(pid) else name, cpu)
    return out


class ThreadCpu:
    """CPU seconds per thread name that a process spends from construction on, threads that end
    meanwhile included at their last reading: call :meth:`sample` while it runs (``samos bench soak``:
    once a second), so that a thread ending before the last reading (the monitor's decoding thread
    stops with the last WebRTC stream) is still counted under its own name."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._base = thread_readings(pid)  # threads alive at the start count from here, later ones from 0
        self._last = dict(self._base)
        self._retired: dict[str, float] = {}  # threads whose id a new thread has taken since

    def sample(self) -> None:
        """Read every live thread's counter now."""
        for tid, (name, cpu) in thread_readings(self.pid).items():
            old = self._last.get(tid)
            if old is not None and cpu < old[1]:  # the id was reused: a new thread
                spent = old[1] - self._base.pop(tid, (old[0], 0.0))[1]
                self._retired[old[0]] = self._retired.get(old[0], 0.0) + spent
            self._last[tid] = (name, cpu)

    def by_name(self) -> dict[str, float]:
        """CPU seconds per thread name since construction (after a last :meth:`sample`)."""
        self.sample()
        out = dict(self._retired)
        for tid, (name, cpu) in self._last.items():
            out[name] = out.get(name, 0.0) + cpu - self._base.get(tid, (name, 0.0))[1]
        return out


def by_thread(cpu: float, threads: dict[str, float], stream_seconds: float) -> dict[str, float]:
    """CPU-s per stream-second per thread name (those above 0.0001), and ``other``: what the process
    spent (``cpu``) beyond them (threads never read: born and ended between two readings)."""
    per = max(1e-9, stream_seconds)
    out = {n: round(c / per, 4) for n, c in sorted(threads.items()) if n != "other" and c / per >= 1e-4}
    out["other"] = round(max(0.0, cpu - sum(threads[n] for n in threads if n in out)) / per, 4)
    return out
