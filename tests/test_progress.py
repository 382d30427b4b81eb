"""Progress: tqdm on a terminal, plain periodic lines (no carriage returns) in a log."""

from __future__ import annotations

import io

from samos.progress import PlainProgress, progress


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_at_most_every_period_and_a_last_one() -> None:
    out, clock = io.StringIO(), _Clock()
    bar = PlainProgress(total=10, desc="epoch 1/3", unit="batch", file=out, every_seconds=30, clock=clock)
    for i in range(10):
        clock.t = 10.0 * (i + 1)
        bar.set_postfix(loss="0.500")
        bar.update(1)
    bar.close()
    bar.close()  # idempotent
    assert out.getvalue().splitlines() == [
        "epoch 1/3: 3/10 batch (30%) in 30 s, loss=0.500",
        "epoch 1/3: 6/10 batch (60%) in 60 s, loss=0.500",
        "epoch 1/3: 9/10 batch (90%) in 90 s, loss=0.500",
        "epoch 1/3: 10/10 batch (100%) in 100 s, loss=0.500",
    ]


def test_no_repeated_last_line() -> None:
    out, clock = io.StringIO(), _Clock()
    bar = PlainProgress(total=2, file=out, every_seconds=1, leave=False, clock=clock)
    bar.update(1)
    clock.t = 5.0
    bar.update(1)  # due: written
    bar.close()  # nothing new since
    assert out.getvalue().splitlines() == ["2/2 it (100%) in 5 s"]


def test_short_transient_loop_writes_nothing() -> None:
    out = io.StringIO()
    assert list(PlainProgress(range(5), desc="validate", file=out, leave=False)) == [0, 1, 2, 3, 4]
    assert out.getvalue() == "", "leave=False and under one period: the epoch's own log line is enough"


def test_progress_is_plain_when_the_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    with progress(total=2, unit="file", file=out) as bar:
        bar.update(2)
    assert isinstance(bar, PlainProgress)
    assert out.getvalue() == "2/2 file (100%) in 0 s\n" and "\r" not in out.getvalue()
    silent = io.StringIO()
    assert list(progress([1, 2], file=silent, disable=True)) == [1, 2] and silent.getvalue() == ""
