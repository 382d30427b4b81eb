"""Scoring long recordings in bounded memory. Torch-free.

:func:`score_many` resamples a whole recording to 16 and 48 kHz first: for a 2 h file that is
1.4 GB of 48 kHz float32. :func:`score_file_streaming` reads the file in blocks (soundfile),
resamples them with stateful soxr streams (the same filter as the one-shot path, see
``samos.audio.resample``) and scores each window as soon as it is complete, keeping only about one
window and one block in memory. The windows and the overall score follow exactly the rules of
:mod:`samos.runtime.windows` (regular hops, one last window aligned to the end).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from samos.audio import RESAMPLE_QUALITY, SPEC_RATE, SSL_RATE, AudioError, check_rate, to_mono
from samos.runtime.scorer import Scorer
from samos.runtime.windows import FileScore, WindowScore, _window_params, plan_windows

LONG_SECONDS = 600.0
"""Files longer than this (seconds) are streamed by ``samos score``."""


def duration_seconds(path: str | Path) -> float | None:
    """Duration from the file header when soundfile can read it, else None."""
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - not a soundfile format: the caller uses the one-shot path
        return None
    return info.frames / info.samplerate if info.samplerate > 0 and info.frames > 0 else None


class _Stream:
    """A growing waveform of which only the samples from ``offset`` on are kept."""

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.rs = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        self.buf = np.zeros(0, np.float32)
        self.offset = 0

    @property
    def end(self) -> int:
        return self.offset + len(self.buf)

    def push(self, x: np.ndarray, last: bool = False) -> None:
        out = np.asarray(self.rs.resample_chunk(x, last=last), dtype=np.float32)
        if len(out):
            self.buf = np.concatenate([self.buf, out])

    def take(self, a: int, b: int) -> np.ndarray:
        return self.buf[a - self.offset : b - self.offset]

    def drop_before(self, i: int) -> None:
        if i > self.offset:
            self.buf = self.buf[i - self.offset :].copy()
            self.offset = i


def score_file_streaming(
    scorer: Scorer,
    path: str | Path,
    window_s: float | None = None,
    hop_s: float | None = None,
    batch_size: int = 16,
    block_seconds: float = 10.0,
) -> FileScore:
    """Score a soundfile-readable recording block by block; same result as :func:`score_waveform`.

    Raises AudioError for unreadable files, NaN/Inf samples, unsupported rates or too short audio.
    """
    p = Path(path)
    win, hop = _window_params(scorer, window_s, hop_s)
    info = scorer.info
    ratio = info.rate_ratio
    spans: list[tuple[int, int]] = []
    mos: list[float] = []
    std: list[float] = []
    batch: list[tuple[np.ndarray, np.ndarray]] = []

    def run_batch() -> None:
        if batch:
            res = scorer.score(np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch]))
            mos.extend(float(m) for m in res.mos)
            std.extend(float(s) for s in res.std)
            batch.clear()

    def add(a: int, b: int) -> None:
        spans.append((a, b))
        batch.append((s16.take(a, b).copy(), s48.take(a * ratio, b * ratio).copy()))
        if len(batch) >= batch_size:
            run_batch()

    try:
        f = sf.SoundFile(str(p))
    except Exception as e:  # noqa: BLE001
        raise AudioError(f"{p}: not a readable audio file ({e})") from None
    with f:
        sr = check_rate(f.samplerate)
        s16, s48 = _Stream(sr, SSL_RATE), _Stream(sr, SPEC_RATE)
        next_start, read = 0, 0
        blocks = f.blocks(blocksize=max(1, int(block_seconds * sr)), dtype="float32", always_2d=True)
        for last, block in _with_last(blocks):
            x = to_mono(block)
            if not np.isfinite(x).all():
                raise AudioError(
                    f"{p} holds {int((~np.isfinite(x)).sum())} NaN/Inf samples near {read / sr:.1f} s"
                )
            read += len(x)
            s16.push(x, last)
            s48.push(x, last)
            available = min(s16.end, s48.end // ratio)
            while next_start + win <= available:
                add(next_start, next_start + win)
                next_start += hop
            # keep what later windows need: from the next hop, and the last `win` samples for the
            # final end-aligned window
            keep = min(next_start, max(0, available - win))
            s16.drop_before(keep)
            s48.drop_before(keep * ratio)
    if read == 0:
        raise AudioError(f"{p}: holds no audio samples")
    n = min(s16.end, s48.end // ratio)
    plan = plan_windows(n, win, hop, info.min_samples16)
    if plan[: len(spans)] != spans:  # pragma: no cover - guarded by the emission rule above
        raise AssertionError("streamed windows diverged from plan_windows")
    for a, b in plan[len(spans) :]:
        add(a, b)
    run_batch()
    windows = tuple(
        WindowScore(a / info.ssl_rate, b / info.ssl_rate, m, s)
        for (a, b), m, s in zip(spans, mos, std, strict=True)
    )
    m_all = float(np.mean(np.asarray(mos, np.float32), dtype=np.float64))
    s_all = float(np.sqrt(np.mean(np.square(np.asarray(std, np.float32), dtype=np.float64))))
    return FileScore(mos=m_all, std=s_all, seconds=n / info.ssl_rate, windows=windows)


def _with_last(blocks):  # noqa: ANN001, ANN202 - generator helper
    """(is_last, item) pairs of an iterator."""
    it = iter(blocks)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield False, prev
        prev = item
    yield True, prev
