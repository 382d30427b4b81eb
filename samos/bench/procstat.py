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


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU seconds of a process's live threads, summed by name: ``main`` for the main
    thread (the monitor's event loop), else the OS name (``samos.monitor.osthread``)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name, cpu = _stat_cpu((task / "stat").read_text())
        except OSError:  # the thread ended meanwhile
            continue
        name = "main" if task.name == str(pid) else name
        out[name] = out.get(name, 0.0) + cpu
    return out


def by_thread(cpu: float, threads: dict[str, float], stream_seconds: float) -> dict[str, float]:
    """CPU-s per stream-second per thread name (those above 0.0001), and ``other``: what the process
    spent (``cpu``) beyond the named threads still alive at the end."""
    per = max(1e-9, stream_seconds)
    out = {n: round(c / per, 4) for n, c in sorted(threads.items()) if n != "other" and c / per >= 1e-4}
    out["other"] = round(max(0.0, cpu - sum(threads[n] for n in threads if n in out)) / per, 4)
    return out
