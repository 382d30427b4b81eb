"""Scoring audio of any length in windows. Torch-free.

A recording is resampled once (soxr) to both model rates, then cut into windows of ``window_s``
seconds every ``hop_s`` seconds (defaults: the model's ``window_seconds``, hop = window):

- a clip no longer than one window is scored whole (one window covering all of it);
- a clip shorter than the model's ``min_seconds`` is an AudioError (too short to score);
- when the hops do not reach the end, one last full-length window is aligned to the end of the
  audio, so every window has the same length and the tail is scored with full context.

The overall score is the mean of the window MOS values; its ``std`` is the root-mean of the window
variances (the model's average predictive uncertainty, not the spread across windows).
Windows of several files are batched together by length; results do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from samos.audio import AudioError, model_input
from samos.runtime.scorer import Scorer


@dataclass(frozen=True)
class WindowScore:
    """One window: ``start_s``/``end_s`` in seconds from the start of the audio; MOS and std."""

    start_s: float
    end_s: float
    mos: float
    std: float


@dataclass(frozen=True)
class FileScore:
    """A whole recording: overall MOS/std (see module doc), its duration and the per-window scores."""

    mos: float
    std: float
    seconds: float
    windows: tuple[WindowScore, ...]


def plan_windows(n: int, window: int, hop: int, minimum: int) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges covering ``n`` samples; see the module doc for the rules."""
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample, got {window} and {hop}")
    if n < minimum:
        raise AudioError(f"too short to score: {n} samples, the model needs at least {minimum}")
    if n <= window:
        return [(0, n)]
    spans = [(s, s + window) for s in range(0, n - window + 1, hop)]
    if spans[-1][1] < n:
        spans.append((n - window, n))
    return spans


def _window_params(scorer: Scorer, window_s: float | None, hop_s: float | None) -> tuple[int, int]:
    info = scorer.info
    window_s = info.window_seconds if window_s is None else window_s
    hop_s = window_s if hop_s is None else hop_s
    if not window_s > 0 or not hop_s > 0:
        raise ValueError(f"window and hop must be positive seconds, got {window_s} and {hop_s}")
    if window_s < info.min_seconds:
        raise ValueError(f"window {window_s} s is shorter than the model's minimum {info.min_seconds} s")
    win = int(round(window_s * info.ssl_rate))
    hop = max(1, int(round(hop_s * info.ssl_rate)))
    return win, hop


@dataclass
class _Pending:
    """Windows of one file waiting for scores."""

    spans: list[tuple[int, int]]
    seconds: float
    mos: np.ndarray
    std: np.ndarray


def score_many(
    scorer: Scorer,
    items: Iterable[tuple[np.ndarray, int] | FileScore | BaseException],
    window_s: float | None = None,
    hop_s: float | None = None,
    batch_size: int = 16,
) -> Iterator[FileScore | AudioError]:
    """Score many recordings, yielding one result per item, in order.

    ``items``: ``(mono audio (samples,), rate Hz)`` or an exception (e.g. the file could not be read),
    which is passed through as an AudioError, or a FileScore already computed (e.g. by
    :func:`samos.runtime.longfile.score_file_streaming`), passed through as it is. Audio that
    cannot be scored (too short, NaN) yields an
    AudioError too. Windows of consecutive files are gathered until ``batch_size`` windows are
    pending, then scored in batches of equal length.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    win, hop = _window_params(scorer, window_s, hop_s)
    info = scorer.info
    ratio = info.rate_ratio
    queue: list[_Pending | AudioError | FileScore] = []
    inputs: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (queue index, window index, w16, w48)

    def flush() -> Iterator[FileScore | AudioError]:
        by_len: dict[int, list[tuple[int, int, np.ndarray, np.ndarray]]] = {}
        for item in inputs:
            by_len.setdefault(len(item[2]), []).append(item)
        for group in by_len.values():
            for s in range(0, len(group), batch_size):
                part = group[s : s + batch_size]
                res = scorer.score(np.stack([p[2] for p in part]), np.stack([p[3] for p in part]))
                for (qi, wi, _, _), m, sd in zip(part, res.mos, res.std, strict=True):
                    pend = queue[qi]
                    assert isinstance(pend, _Pending)
                    pend.mos[wi], pend.std[wi] = m, sd
        inputs.clear()
        for pend in queue:
            yield pend if isinstance(pend, (AudioError, FileScore)) else _finish(pend, info.ssl_rate)
        queue.clear()

    for item in items:
        if isinstance(item, FileScore):
            queue.append(item)
            continue
        try:
            if isinstance(item, BaseException):
                raise item if isinstance(item, AudioError) else AudioError(str(item))
            audio, sr = item
            x = model_input(audio, sr)
            spans = plan_windows(len(x.wave16), win, hop, info.min_samples16)
        except AudioError as e:
            queue.append(e)
            continue
        pend = _Pending(spans, x.seconds, np.zeros(len(spans), np.float32), np.zeros(len(spans), np.float32))
        qi = len(queue)
        queue.append(pend)
        for wi, (a, b) in enumerate(spans):
            inputs.append((qi, wi, x.wave16[a:b], x.wave48[a * ratio : b * ratio]))
        if len(inputs) >= batch_size:
            yield from flush()
    yield from flush()


def _finish(p: _Pending, rate: int) -> FileScore:
    windows = tuple(
        WindowScore(a / rate, b / rate, float(m), float(s))
        for (a, b), m, s in zip(p.spans, p.mos, p.std, strict=True)
    )
    mos = float(np.mean(p.mos, dtype=np.float64))
    std = float(np.sqrt(np.mean(np.square(p.std, dtype=np.float64))))
    return FileScore(mos=mos, std=std, seconds=p.seconds, windows=windows)


def score_waveform(
    scorer: Scorer,
    audio: np.ndarray,
    sr: int,
    window_s: float | None = None,
    hop_s: float | None = None,
    batch_size: int = 16,
) -> FileScore:
    """Score one mono waveform ``(samples,)`` at ``sr`` Hz in windows; raises AudioError if unscorable."""
    (result,) = score_many(scorer, [(audio, sr)], window_s, hop_s, batch_size)
    if isinstance(result, AudioError):
        raise result
    return result
