"""Scoring long recordings in bounded memory. Torch-free.

``samos score`` loads a file whole before scoring it: for a 2 h file that is 345 MB of 48 kHz
float32 before anything is resampled. :func:`score_file_streaming` reads the file in blocks
(soundfile) and feeds them to the same windowing path as :func:`samos.runtime.windows.score_many`
(the monitor's: streaming resampling, windows, speech gate), scoring windows as they complete, so
only about one block, one window and one batch are held. The result is the one-shot result.
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from samos.audio import AudioError
from samos.runtime.scorer import Scorer
from samos.runtime.windows import FileScore, FileWindows, _Batcher, _Job, new_stream, window_config

LONG_SECONDS = 600.0
"""Files longer than this (seconds) are streamed by ``samos score``."""


def duration_seconds(path: str | Path) -> float | None:
    """Duration from the file header when soundfile can read it, else None."""
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - not a soundfile format: the caller uses the one-shot path
        return None
    return info.frames / info.samplerate if info.samplerate > 0 and info.frames > 0 else None


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
    cfg = window_config(scorer, window_s, hop_s)
    batcher = _Batcher(scorer, batch_size)
    job = _Job(new_stream(scorer))
    try:
        f = sf.SoundFile(str(p))
    except Exception as e:  # noqa: BLE001
        raise AudioError(f"{p}: not a readable audio file ({e})") from None
    with f:
        fw = FileWindows(f.samplerate, cfg, scorer.info.min_seconds, what=str(p))
        blocks = f.blocks(blocksize=max(1, int(block_seconds * fw.rate)), dtype="float32", always_2d=True)
        for block in blocks:
            batcher.add(job, fw.push(block))
        batcher.add(job, fw.flush())
    batcher.run()
    job.seconds = fw.seconds
    return job.result()
