"""Console output that never blocks the event loop: text handed to a writer thread, bounded, drops counted.

The monitor's status lines (:class:`samos.monitor.console.StatusBoard`) go to stdout from the event
loop. A plain write blocks once stdout stops being read: a pipe whose reader read the banner and
stopped (64 KiB of pipe plus what the reader buffered; ``samos bench soak`` stopped 32 RTP streams
this way after about 400 s of status lines), a stuck log collector, a terminal paused with Ctrl-S.
On the event loop that stops every stream, the websocket fan-out and ``/metrics``.

:class:`ThreadedOut` is a minimal text stream (``write``/``flush``): ``flush`` hands what was written
since the last flush to a writer thread through a bounded queue and returns at once. When the queue
is full the text is dropped and its lines counted (``dropped_lines``); once the output moves again a
line says how many were lost. The thread writes with ``os.write`` to its own duplicate of the file
descriptor, so nothing in the interpreter (``sys.stdout``'s buffer, its lock) is held while it
waits.
"""

from __future__ import annotations

import os
import queue
import threading

from samos.monitor import osthread


class ThreadedOut:
    """Text written to file descriptor ``fd`` by a daemon thread (see the module doc).

    ``max_pending``: flushed blocks waiting for the thread before new ones are dropped.
    ``prefix``: put before the line that reports dropped lines.
    """

    def __init__(self, fd: int, *, max_pending: int = 64, prefix: str = "") -> None:
        self._fd = os.dup(fd)
        self._queue: queue.Queue[bytes | None] = queue.Queue(max_pending)
        self._parts: list[str] = []
        self.prefix = prefix
        self.dropped_lines = 0
        """Lines dropped because the writer was behind (read by the writer thread)."""
        self.failed: OSError | None = None
        """Set when a write failed (e.g. the reader closed the pipe); nothing is written after it."""
        self._thread = threading.Thread(target=self._run, name="samos-lineout", daemon=True)
        self._thread.start()

    def write(self, text: str) -> int:
        """Keep ``text`` until the next :meth:`flush`; returns its length."""
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        """Hand what was written to the writer thread; drop it (counted) when the thread is behind."""
        if not self._parts:
            return
        data = "".join(self._parts).encode("utf-8", "replace")
        self._parts.clear()
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped_lines += max(1, data.count(b"\n"))

    def pending(self) -> int:
        """Flushed blocks still waiting for the writer thread."""
        return self._queue.qsize()

    def close(self, timeout: float = 2.0) -> bool:
        """Flush, let the thread write what is queued (up to ``timeout`` s), then stop it.

        Returns False when the output did not take it all in time (the thread is left blocked; it is
        a daemon and its descriptor stays open)."""
        self.flush()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        os.close(self._fd)
        return True

    def _run(self) -> None:
        osthread.name_current()
        reported = 0
        while (data := self._queue.get()) is not None:
            if self.failed is not None:
                continue  # keep taking blocks so that close() is not held up
            lost = self.dropped_lines - reported
            if lost:
                note = f"{self.prefix}{lost} lines of output dropped: it was not being read\n"
                data = note.encode() + data
                reported += lost
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as e:  # the reader went away (EPIPE) or the descriptor is bad
                self.failed = e
