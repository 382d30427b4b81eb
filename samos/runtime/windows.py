"""Scoring recordings in windows, exactly as the live monitor scores a stream. Torch-free.

There is one implementation of the path from samples to scored windows, the monitor's
(:class:`samos.monitor.stream.StreamProcessor`): mono float32, streaming soxr resampling to both model
rates (:mod:`samos.monitor.normalise`), windows of ``window_seconds`` every ``hop_seconds``
(:mod:`samos.monitor.window`) and the speech gate with its diagnostics
(:mod:`samos.monitor.diagnostics`). ``samos score`` feeds a file through it block by block, as the
monitor's file source does, so a file scored offline and the same file streamed through the monitor
get the same windows, statuses and MOS. Defaults are the monitor's
(:class:`samos.monitor.config.WindowConfig`: 4 s windows every 1 s).

- With a model that has an incremental pair (the default model), windows are scored as the monitor
  scores them: frame features once per hop, one fixed gain per file (samos.runtime.incremental).
- Only windows with status ``ok`` are scored; the others (``silence``, ``no_speech`` ...) keep their
  status and diagnostics and have no MOS.
- A recording shorter than one window is scored whole when it is at least the model's
  ``min_seconds`` long; a shorter one is an AudioError (too short to score).
- After the last full hop, one last full-length window ends at the end of the recording when at least
  half a hop of audio follows the last window (the monitor's rule).

The file's MOS is the mean of its scored windows' MOS (None when no window was scored, and then the
file's ``status`` says why); its ``std`` is the root-mean of their variances (the model's average
predictive uncertainty, not the spread across windows). Windows of several files are batched
together by length; results do not depend on the batch size, and memory stays at about one block,
one window and one batch, whatever the file length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from samos.audio import SSL_RATE, AudioError, check_rate, to_mono
from samos.monitor.config import WindowConfig
from samos.monitor.source import AudioChunk
from samos.monitor.stream import Pending, StreamProcessor
from samos.monitor.window import Window
from samos.runtime.incremental import StreamFrames, WindowJob
from samos.runtime.scorer import Scorer

BLOCK_SECONDS = 10.0
"""Audio handed to the windowing path at a time (s), as a file source reads it."""


@dataclass(frozen=True)
class WindowScore:
    """One window: ``start_s``/``end_s`` in seconds from the start of the audio; ``status`` as the
    monitor gives it; MOS and std (None unless ``status == "ok"``); the monitor's diagnostics."""

    start_s: float
    end_s: float
    mos: float | None
    std: float | None
    status: str = "ok"
    diagnostics: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class FileScore:
    """A whole recording: overall MOS/std over the scored windows (None when none was scored, see the
    module doc), its duration (s) and every window."""

    mos: float | None
    std: float | None
    seconds: float
    windows: tuple[WindowScore, ...]

    @property
    def scored(self) -> int:
        """Windows that have a MOS."""
        return sum(w.mos is not None for w in self.windows)

    def statuses(self) -> dict[str, int]:
        """How many windows have each status."""
        out: dict[str, int] = {}
        for w in self.windows:
            out[w.status] = out.get(w.status, 0) + 1
        return out

    @property
    def status(self) -> str:
        """``ok`` when any window was scored; otherwise why none was: the most common window status
        (``no_speech``: the speech detector found too little speech in every window; ``silence``:
        dead air)."""
        if self.scored:
            return "ok"
        counts = self.statuses()
        return max(counts, key=counts.__getitem__) if counts else "no_window"


def window_config(scorer: Scorer, window_s: float | None = None, hop_s: float | None = None) -> WindowConfig:
    """The monitor's window settings with ``window_s``/``hop_s`` where given; a recording shorter than
    a window is scored whole down to the model's ``min_seconds``. Raises ValueError for bad values."""
    base = WindowConfig()
    window = base.window_seconds if window_s is None else window_s
    hop = base.hop_seconds if hop_s is None else hop_s
    if not window > 0 or not hop > 0:
        raise ValueError(f"window and hop must be positive seconds, got {window} and {hop}")
    if window < scorer.info.min_seconds:
        raise ValueError(f"window {window} s is shorter than the model's minimum {scorer.info.min_seconds} s")
    if hop > window:
        raise ValueError(f"the hop ({hop} s) must not be longer than the window ({window} s)")
    min_final = min(window, max(scorer.info.min_seconds, 1.0 / SSL_RATE))
    try:
        return replace(base, window_seconds=window, hop_seconds=hop, min_final_seconds=min_final)
    except ValueError as e:  # ConfigError: out of the monitor's range
        raise ValueError(str(e)) from None


class FileWindows:
    """One recording through the monitor's path: ``push(block)`` native-rate samples ``[n]`` or
    ``[n, ch]`` at ``rate`` Hz, then ``flush()``; both return the :class:`Pending` windows completed.
    Raises AudioError on NaN/Inf samples, and from ``flush`` when the recording is too short."""

    def __init__(self, rate: int, cfg: WindowConfig, min_seconds: float, what: str = "audio") -> None:
        self.rate = check_rate(rate)
        self.proc = StreamProcessor(self.rate, cfg, min_seconds)
        self.min_seconds = min_seconds
        self.what = what
        self.samples = 0
        self.windows = 0

    def push(self, block: np.ndarray) -> list[Pending]:
        x = to_mono(block)
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).sum())
            near = f" near {self.samples / self.rate:.1f} s" if self.samples else ""
            raise AudioError(f"{self.what} holds {bad} NaN/Inf samples{near}")
        self.samples += len(x)
        out = self.proc.push(AudioChunk(x, self.rate, 0, 0.0))
        self.windows += len(out)
        return out

    def flush(self) -> list[Pending]:
        if self.samples == 0:
            raise AudioError(f"{self.what} holds no audio samples")
        out = self.proc.flush()
        self.windows += len(out)
        if self.windows == 0:
            raise AudioError(
                f"too short to score: {self.samples / self.rate:.3f} s, the model needs at least "
                f"{self.min_seconds:g} s"
            )
        return out

    @property
    def seconds(self) -> float:
        """Seconds of audio pushed (at 16 kHz, after resampling)."""
        return self.proc.windower.seconds


def new_stream(scorer: Scorer) -> StreamFrames | None:
    """A file's incremental state when the scorer has a pair (None: whole windows)."""
    make = getattr(scorer, "new_stream", None)
    return make() if make is not None else None


class _Job:
    """One file's windows (without their audio), filled in as their scores come; ``frames``: its
    incremental state when the model has a pair (the file is scored as the monitor streams it)."""

    def __init__(self, frames: StreamFrames | None = None) -> None:
        self.frames = frames
        self.rows: list[tuple[float, float, str, dict[str, Any]]] = []
        self.mos: list[float | None] = []
        self.std: list[float | None] = []
        self.seconds = 0.0

    def result(self) -> FileScore:
        wins = tuple(
            WindowScore(a, b, m, s, status, diag)
            for (a, b, status, diag), m, s in zip(self.rows, self.mos, self.std, strict=True)
        )
        m = np.asarray([x for x in self.mos if x is not None], np.float32)
        s = np.asarray([x for x in self.std if x is not None], np.float32)
        if not m.size:
            return FileScore(None, None, self.seconds, wins)
        mos = float(np.mean(m, dtype=np.float64))
        std = float(np.sqrt(np.mean(np.square(s, dtype=np.float64))))
        return FileScore(mos, std, self.seconds, wins)


class _Batcher:
    """Windows waiting for the model, scored ``batch_size`` at a time in groups of equal length."""

    def __init__(self, scorer: Scorer, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.scorer = scorer
        self.batch_size = batch_size
        self.waiting: list[tuple[_Job, int, Window]] = []

    def add(self, job: _Job, windows: list[Pending]) -> None:
        for p in windows:
            job.rows.append((p.window.t_start, p.window.t_end, p.status, p.diagnostics))
            job.mos.append(None)
            job.std.append(None)
            if p.status == "ok":
                self.waiting.append((job, len(job.rows) - 1, p.window))
        if len(self.waiting) >= self.batch_size:
            self.run()

    def drop(self, job: _Job) -> None:
        """Forget ``job``'s waiting windows (its file failed)."""
        self.waiting = [w for w in self.waiting if w[0] is not job]

    def busy(self, job: _Job) -> bool:
        """``job`` still has windows waiting for the model."""
        return any(w[0] is job for w in self.waiting)

    def run(self) -> None:
        if (
            getattr(self.scorer, "pair", None) is not None
        ):  # in order, a file's windows one after the other, batched across files
            for i in range(0, len(self.waiting), self.batch_size):
                part = self.waiting[i : i + self.batch_size]
                res = self.scorer.score_windows(
                    [WindowJob(job.frames, w.start, w.wave16, w.wave48) for job, _, w in part]  # type: ignore[arg-type]
                )
                for (job, k, _), m, sd in zip(part, res.mos, res.std, strict=True):
                    job.mos[k], job.std[k] = float(m), float(sd)
            self.waiting.clear()
            return
        by_len: dict[int, list[tuple[_Job, int, Window]]] = {}
        for item in self.waiting:
            by_len.setdefault(len(item[2].wave16), []).append(item)
        for group in by_len.values():
            for i in range(0, len(group), self.batch_size):
                part = group[i : i + self.batch_size]
                w16 = np.stack([w.wave16 for _, _, w in part])
                w48 = np.stack([w.wave48 for _, _, w in part])
                res = self.scorer.score(w16, w48)
                for (job, k, _), m, sd in zip(part, res.mos, res.std, strict=True):
                    job.mos[k], job.std[k] = float(m), float(sd)
        self.waiting.clear()


def score_many(
    scorer: Scorer,
    items: Iterable[tuple[np.ndarray, int] | FileScore | BaseException],
    window_s: float | None = None,
    hop_s: float | None = None,
    batch_size: int = 16,
) -> Iterator[FileScore | AudioError]:
    """Score many recordings, yielding one result per item, in order.

    ``items``: ``(audio [samples] or [samples, channels], rate Hz)``, or an exception (e.g. the file
    could not be read), passed through as an AudioError, or a FileScore already computed (e.g. by
    :func:`samos.runtime.longfile.score_file_streaming`), passed through as it is. Audio that cannot
    be scored (too short, NaN) yields an AudioError too. Raises ValueError for a bad window, hop or
    batch size.
    """
    cfg = window_config(scorer, window_s, hop_s)
    batcher = _Batcher(scorer, batch_size)
    queue: list[_Job | AudioError | FileScore] = []

    def done() -> Iterator[FileScore | AudioError]:
        while queue and not (isinstance(queue[0], _Job) and batcher.busy(queue[0])):
            head = queue.pop(0)
            yield head.result() if isinstance(head, _Job) else head

    for item in items:
        if isinstance(item, FileScore):
            queue.append(item)
        elif isinstance(item, BaseException):
            queue.append(item if isinstance(item, AudioError) else AudioError(str(item)))
        else:
            audio, sr = item
            job = _Job(new_stream(scorer))
            try:
                fw = FileWindows(sr, cfg, scorer.info.min_seconds)
                block = max(1, int(BLOCK_SECONDS * fw.rate))
                for i in range(0, len(audio), block):
                    batcher.add(job, fw.push(audio[i : i + block]))
                batcher.add(job, fw.flush())
                job.seconds = fw.seconds
            except AudioError as e:
                batcher.drop(job)
                queue.append(e)
            else:
                queue.append(job)
        yield from done()
    batcher.run()
    yield from done()


def score_waveform(
    scorer: Scorer,
    audio: np.ndarray,
    sr: int,
    window_s: float | None = None,
    hop_s: float | None = None,
    batch_size: int = 16,
) -> FileScore:
    """Score one waveform ``[samples]`` (or ``[samples, channels]``) at ``sr`` Hz in windows; raises
    AudioError if it cannot be scored."""
    (result,) = score_many(scorer, [(audio, sr)], window_s, hop_s, batch_size)
    if isinstance(result, AudioError):
        raise result
    return result
