"""Progress reporting that suits where it goes: a tqdm bar on a terminal, plain lines in a log.

``progress(...)`` takes tqdm's common arguments and returns an object with tqdm's small interface
(iterate, ``update``, ``set_postfix``, ``close``, context manager). When the stream is not a
terminal (``samos train ... > log``) it is a :class:`PlainProgress`: one line every
``every_seconds`` (and one at the end), never carriage returns. Torch-free.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

PLAIN_EVERY_SECONDS = 30.0


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real file
        return False


class PlainProgress:
    """tqdm's interface, writing ``DESC: N/TOTAL (P%) in S s, k=v`` lines at most every ``every_seconds``.

    The final line (on ``close``) is written when ``leave`` or when a line was written before, so a
    short loop in a log costs at most one line.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        file: TextIO | None = None,
        every_seconds: float = PLAIN_EVERY_SECONDS,
        leave: bool = True,
        clock: Any = time.monotonic,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.unit = unit
        self.file = file or sys.stderr
        self.every_seconds = every_seconds
        self.leave = leave
        self.clock = clock
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._t0 = clock()
        self._last = self._t0
        self._lines = 0
        self._written_n = -1
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None, "PlainProgress without an iterable: use update()"
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = kw

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self._last >= self.every_seconds:
            self._write(now)

    def line(self, now: float) -> str:
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        post = "".join(f", {k}={v}" for k, v in self.postfix.items())
        head = f"{self.desc}: " if self.desc else ""
        return f"{head}{count} {self.unit}{pct} in {now - self._t0:.0f} s{post}"

    def _write(self, now: float) -> None:
        self.file.write(self.line(now) + "\n")
        self.file.flush()
        self._last = now
        self._lines += 1
        self._written_n = self.n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if (self.leave or self._lines) and self._written_n != self.n:  # not the line just written
            self._write(self.clock())


class _Silent(PlainProgress):
    def _write(self, now: float) -> None:
        pass


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    file: TextIO | None = None,
    disable: bool = False,
    leave: bool = True,
    every_seconds: float = PLAIN_EVERY_SECONDS,
) -> Any:
    """A tqdm bar on a terminal, else :class:`PlainProgress` lines; nothing at all when ``disable``."""
    stream = file or sys.stderr
    if disable:
        return _Silent(iterable, total=total, desc=desc, unit=unit, file=stream)
    if is_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, leave=leave, dynamic_ncols=True)
    return PlainProgress(
        iterable, total=total, desc=desc, unit=unit, file=stream, every_seconds=every_seconds, leave=leave
    )
