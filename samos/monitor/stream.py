"""One stream's pure processing around the model.

:class:`StreamProcessor` (before scoring): ``push(chunk)`` and ``flush()`` return :class:`Pending`
windows (normalised, windowed, with status and diagnostics) ready for the model.
:class:`StreamResults` (after scoring): rolling MOS and alert state, turning each scored window into
its ``score`` message and, when the alert state changes, an ``alert`` message.
:func:`score_chunks` is the test/bench harness: a list of chunks through the same path, synchronously.
All I/O-free.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from samos.audio import RATE_RATIO, to_mono
from samos.monitor import pool
from samos.monitor.aggregate import Rolling, RollingMos
from samos.monitor.alerts import AlertState, Event, SpeechLostState
from samos.monitor.config import AggregateConfig, AlertConfig, WindowConfig
from samos.monitor.diagnostics import FrameStats, VadParams, analyse
from samos.monitor.normalise import Normaliser, Segment
from samos.monitor.schema import StreamMessages
from samos.monitor.source import AudioChunk
from samos.monitor.window import Window, Windower
from samos.runtime.vad import FRAME as VAD_FRAME
from samos.runtime.vad import SpeechDetector, VadModel, window_frames


@dataclass(frozen=True)
class Pending:
    """A window with its status (``ok`` windows are to be scored) and diagnostics."""

    window: Window
    status: str
    diagnostics: dict[str, Any]


class StreamProcessor:
    """normalise -> window -> speech detection and diagnostics for one stream at native ``rate`` Hz.

    Work is done per window, not per chunk: a chunk that cannot complete a window yet (even if the
    resamplers released every sample it implies) is only held; when one can, the held chunks go
    through the normaliser together (joined where no lost audio lies between them), so a live
    source's 100 ms chunks cost one resampling call per hop instead of ten. Chunks of any layout are
    held, down-mixed to mono float32 as the normaliser would (a file's ``[n, 1]``, a sound card's
    ``[n, channels]``, integer PCM); only a change of rate normalises at once. The samples, windows
    and the chunk at which each window is returned are those of normalising every chunk at once
    (the resamplers are streams: chunking does not change their output).

    The speech detector runs over the stream's 16 kHz audio once, in order (its state carries
    across frames), lazily: the audio since the last window goes through it in one call when a
    window completes. Each window gets the probabilities of the detector frames wholly inside it.
    """

    def __init__(
        self, rate: int, cfg: WindowConfig, min_seconds: float = 0.0, vad_model: VadModel | None = None
    ) -> None:
        self.cfg = cfg
        self.normaliser = Normaliser(rate)
        self.windower = Windower(cfg.window_seconds, cfg.hop_seconds, max(cfg.min_final_seconds, min_seconds))
        self.vad = VadParams(cfg.silence_db, cfg.speech_threshold, cfg.min_active)
        self.detector = SpeechDetector(vad_model)
        self.frame_stats: FrameStats | None = FrameStats()  # None: measure each window whole
        self.invalid_samples = 0
        self._unheard: list[np.ndarray] = []  # 16 kHz audio not yet through the detector
        self._probs = np.zeros(0, np.float32)  # detector frames from self._first on
        self._first = 0
        self._held: list[AudioChunk] = []  # chunks not normalised yet (none can complete a window)
        self._held_in = 0  # their input samples, lost audio filled in as the normaliser fills it

    @property
    def seconds(self) -> float:
        """Stream seconds pushed so far (those normalised and windowed, plus the held chunks')."""
        return self.windower.seconds + self._held_in / self.normaliser.rate

    def push(self, chunk: AudioChunk) -> list[Pending]:
        """Take one chunk; returns the windows it completes (see the class doc)."""
        if chunk.rate == self.normaliser.rate:
            self._held.append(_mono(chunk))
            self._held_in += len(chunk.samples) + self.normaliser.fill(chunk.dropped)
            if self.normaliser.at16(self._held_in) < self.windower.next_end:
                return []  # even every sample it implies would not complete the next window
            return self._release()
        return self._release() + self._windows(self.normaliser.push(chunk), final=False)

    def flush(self) -> list[Pending]:
        return self._release() + self._windows(self.normaliser.flush(), final=True)

    def _release(self) -> list[Pending]:
        """Normalise the held chunks (each run without lost audio between its chunks as one)."""
        held, self._held, self._held_in = self._held, [], 0
        out: list[Pending] = []
        i = 0
        while i < len(held):
            j = i + 1
            while j < len(held) and not (held[j].dropped or held[j].concealed):
                j += 1
            out += self._windows(self.normaliser.push(_joined(held[i:j])), final=False)
            i = j
        return out

    def push_normalised(self, seg: Segment, final: bool = False) -> list[Pending]:
        """Windows of audio already at the model's rates (a benchmark that resampled once), bypassing
        the normaliser; ``final=True`` ends the stream (then nothing more may be pushed)."""
        return self._windows(seg, final)

    def _windows(self, seg: Segment, final: bool) -> list[Pending]:
        self.invalid_samples += seg.invalid
        windows = self.windower.push(seg)
        if final:
            windows += self.windower.flush()
        if len(seg.wave16):
            self._unheard.append(seg.wave16)
        if not windows:
            return []
        self._listen()
        out = []
        for w in windows:
            k0, k1, offset = window_frames(w.start, len(w.wave16))
            probs = self._probs[k0 - self._first : k1 - self._first]
            status, diag = analyse(
                w.wave48,
                w.rate,
                w.dropped_seconds,
                self.vad,
                probs,
                offset,
                self.frame_stats,
                RATE_RATIO * w.start,
            )
            diag["loss_ratio"] = round(w.loss_ratio, 4)
            out.append(Pending(w, status, diag))
        # later windows start later than this one: frames before its start are no longer needed
        keep = max(0, windows[-1].start // VAD_FRAME - self._first)
        self._probs, self._first = self._probs[keep:], self._first + keep
        return out

    def _listen(self) -> None:
        """Run the detector over the audio pushed since the last call."""
        if not self._unheard:
            return
        x = np.concatenate(self._unheard) if len(self._unheard) > 1 else self._unheard[0]
        self._unheard = []
        new = self.detector.push(x)
        if new.size:
            self._probs = np.concatenate([self._probs, new])


def _mono(chunk: AudioChunk) -> AudioChunk:
    """The chunk as mono float32 ``[n]``, as the normaliser would down-mix it (so that held chunks of
    any layout or sample type join): a sound card's ``[n, channels]``, a file's ``[n, 1]``, int PCM."""
    x = to_mono(chunk.samples)
    return chunk if x is chunk.samples else replace(chunk, samples=x)


def _joined(chunks: list[AudioChunk]) -> AudioChunk:
    """Consecutive mono chunks of one rate, only the first with lost audio before or at its start,
    as one chunk (captured when the last was)."""
    if len(chunks) == 1:
        return chunks[0]
    first, last = chunks[0], chunks[-1]
    samples = pool.concatenate([c.samples for c in chunks])
    return AudioChunk(samples, first.rate, first.dropped, last.t_capture, first.concealed)


class StreamResults:
    """Rolling MOS, alert state and message numbering of one stream."""

    def __init__(self, name: str, agg: AggregateConfig, alerts: AlertConfig) -> None:
        self.rolling = RollingMos(agg.horizon_seconds, agg.weighting)
        self.alert = AlertState(
            alerts.threshold, alerts.hysteresis, alerts.min_duration_seconds, alerts.clear_unscored_seconds
        )
        self.speech_lost = (
            SpeechLostState(
                alerts.no_speech_seconds, alerts.threshold + alerts.hysteresis, alerts.min_duration_seconds
            )
            if alerts.no_speech_seconds is not None
            else None
        )
        self.alerts = alerts
        self.messages = StreamMessages(name)
        self.windows = 0

    def result(
        self, p: Pending, status: str, mos: float | None, std: float | None, diag: dict[str, Any], now: float
    ) -> tuple[Rolling, list[dict[str, Any]]]:
        """A window's outcome (``now``: monotonic s) -> the rolling value and the messages to publish."""
        w = p.window
        roll = self.rolling.push(w.t_end, mos if status == "ok" else None, std)
        self.windows += 1
        out = [
            self.messages.score(
                index=w.index,
                t_start=w.t_start,
                t_end=w.t_end,
                status=status,
                mos=mos,
                mos_std=std,
                rolling_mos=roll.mos,
                rolling_std=roll.std,
                diagnostics=diag,
                t_capture=w.t_capture,
                latency_ms=1000.0 * (now - w.t_capture),
            )
        ]
        if self.alerts.enabled:
            events: list[Event | None] = [self.alert.update(w.t_end, roll.mos, scored=status == "ok")]
            level = diag.get("level_db")
            level = float(level) if isinstance(level, (int, float)) else None
            if self.speech_lost is not None:
                events.append(self.speech_lost.update(w.t_end, status, roll.mos, level))
            for e in events:
                if e is None:
                    continue
                out.append(
                    self.messages.alert(
                        event=e.event,
                        t=w.t_end,
                        rolling_mos=roll.mos,
                        threshold=self.alerts.threshold,
                        duration_seconds=e.duration_seconds,
                        kind=e.kind,
                        reason=e.reason,
                        message=e.message,
                        level_db=level if e.kind == "no_speech" else None,
                    )
                )
        return roll, out


def score_chunks(
    chunks: Iterable[AudioChunk], scorer: Any, cfg: WindowConfig | None = None, rate: int | None = None
) -> list[tuple[Pending, float | None, float | None]]:
    """Run chunks through the stream path and score the ``ok`` windows one by one.

    Returns ``(pending, mos, std)`` per window (``mos``/``std`` None for windows without a MOS).
    """
    cfg = cfg or WindowConfig()
    proc: StreamProcessor | None = None
    pending: list[Pending] = []
    for c in chunks:
        if proc is None:
            proc = StreamProcessor(rate or c.rate, cfg)
        pending += proc.push(c)
    if proc is not None:
        pending += proc.flush()
    out: list[tuple[Pending, float | None, float | None]] = []
    for p in pending:
        if p.status == "ok":
            r = scorer.score(p.window.wave16[None], p.window.wave48[None])
            out.append((p, float(r.mos[0]), float(r.std[0])))
        else:
            out.append((p, None, None))
    return out
