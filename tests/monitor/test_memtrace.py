"""SAMOS_TRACEMALLOC: the opt-in memory reports (their spec, and what a report holds)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from samos.monitor.memtrace import TraceSpec


def test_parse() -> None:
    spec = TraceSpec.parse("/tmp/r.txt@60,120.5,300")
    assert spec == TraceSpec(Path("/tmp/r.txt"), (60.0, 120.5, 300.0), 0)
    assert TraceSpec.parse("a@b.txt@1,2", "8") == TraceSpec(Path("a@b.txt"), (1.0, 2.0), 8)


@pytest.mark.parametrize(
    ("value", "frames"),
    [
        ("r.txt", None),
        ("@1,2", None),
        ("r.txt@5", None),
        ("r.txt@5,3", None),
        ("r.txt@1,x", None),
        ("r.txt@-1,2", None),
        ("r.txt@1,2", "-3"),
        ("r.txt@1,2", "many"),
    ],
)
def test_parse_refuses_malformed(value: str, frames: str | None) -> None:
    with pytest.raises(ValueError, match="SAMOS_TRACEMALLOC"):
        TraceSpec.parse(value, frames)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAMOS_TRACEMALLOC", raising=False)
    assert TraceSpec.from_env() is None
    monkeypatch.setenv("SAMOS_TRACEMALLOC", "out.txt@0,1")
    monkeypatch.setenv("SAMOS_TRACEMALLOC_FRAMES", "4")
    assert TraceSpec.from_env() == TraceSpec(Path("out.txt"), (0.0, 1.0), 4)


_SCENARIO = """
import asyncio, sys
from pathlib import Path
import numpy as np
from samos.monitor.memtrace import TraceSpec, trace

out = Path(sys.argv[1])
kept = []

async def grow():
    while not out.exists():  # after the first report (a file, not an event)
        await asyncio.sleep(0.01)
    kept.append(np.ones(4 << 20, np.uint8))  # 4 MiB before the second

async def main():
    await asyncio.gather(trace(TraceSpec(out, (0.0, 1.0), frames=4)), grow())

asyncio.run(main())
"""


def test_reports_show_what_grew(tmp_path: Path) -> None:
    # In a fresh process, as the monitor runs it: tracemalloc's state after hundreds of other tests
    # (started, stopped, other frame counts) is not what a monitor starts with.
    out, script = tmp_path / "mem.txt", tmp_path / "scenario.py"
    script.write_text(_SCENARIO)  # a file: tracebacks then show its source lines
    run = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    heads = re.findall(r"^== t=(\d+) s rss_mb=([\d.]+)", text, re.M)
    assert [t for t, _ in heads] == ["0", "1"] and all(float(r) > 0 for _, r in heads)
    assert text.count("traced_mb=") == 2 and "malloc_in_use_mb=" in text
    by_line = text.split("-- growth by line since the first report:")[1].splitlines()[1]
    assert "+4096 KiB" in by_line  # the array, first
    by_traceback = text.split("-- growth by traceback (top 8):")[1]
    assert "kept.append(np.ones(4 << 20, np.uint8))" in by_traceback  # and where it was made
