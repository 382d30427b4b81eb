"""ThreadedOut: console output through a thread, on a real pipe that is not read, then read or closed."""

from __future__ import annotations

import io
import os
import sys
import threading
import time

import pytest

from samos.monitor.cli import console_out
from samos.monitor.lineout import ThreadedOut

LINE = "monitor: " + "x" * 90 + "\n"  # 100 bytes, like a status line


def _read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 65536):
        into += chunk


def test_a_pipe_nobody_reads_never_blocks_the_writer_and_drops_are_reported() -> None:
    r, w = os.pipe()
    out = ThreadedOut(w, max_pending=4, prefix="monitor: ")
    try:
        t0 = time.perf_counter()
        for i in range(3000):  # 300 KB: far more than the pipe holds; a plain write would block here
            out.write(f"{i:5d} {LINE}")
            out.flush()
        assert time.perf_counter() - t0 < 2.0
        assert out.dropped_lines > 0
        got = bytearray()
        reader = threading.Thread(target=_read_all, args=(r, got))
        reader.start()
        deadline = time.perf_counter() + 10.0  # let the writer catch up, so that "last" finds room
        while out.pending() and time.perf_counter() < deadline:
            time.sleep(0.01)
        out.write("last\n")
        out.flush()
        assert out.close(timeout=10.0)
        os.close(w)
        reader.join(10.0)
    finally:
        os.close(r)
    lines = got.decode().splitlines()
    notes = [x for x in lines if "lines of output dropped" in x]
    assert notes and all(x.startswith("monitor: ") for x in notes)
    reported = sum(int(x.split()[1]) for x in notes)
    kept = [x for x in lines if x not in notes and x != "last"]
    assert reported == out.dropped_lines
    assert len(kept) + reported == 3000, "every line was either written whole or counted as dropped"
    numbers = [int(x.split()[0]) for x in kept]
    assert numbers == sorted(numbers) and lines[-1] == "last"


def test_a_reader_that_goes_away_stops_the_writer_without_an_error_in_the_caller() -> None:
    r, w = os.pipe()
    os.close(r)
    out = ThreadedOut(w)
    try:
        out.write(LINE)
        out.flush()
        assert out.close(timeout=5.0)
        assert isinstance(out.failed, BrokenPipeError)
    finally:
        os.close(w)


def test_console_out_uses_the_thread_only_for_a_real_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert console_out() is sys.stdout
    r, w = os.pipe()
    monkeypatch.setattr(sys, "stdout", os.fdopen(w, "w"))
    out = console_out()
    try:
        assert isinstance(out, ThreadedOut)
        out.write("status\n")
        out.flush()
        assert out.close()
        assert os.read(r, 100) == b"status\n"
    finally:
        sys.stdout.close()
        os.close(r)
