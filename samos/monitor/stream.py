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
from dataclasses import dataclass
from typing import Any

from samos.monitor.aggregate import Rolling, RollingMos
from samos.monitor.alerts import AlertState
from samos.monitor.config import AggregateConfig, AlertConfig, WindowConfig
from samos.monitor.diagnostics import VadParams, analyse
from samos.monitor.normalise import Normaliser, Segment
from samos.monitor.schema import StreamMessages
from samos.monitor.source import AudioChunk
from samos.monitor.window import Window, Windower


@dataclass(frozen=True)
class Pending:
    """A window with its status (``ok`` windows are to be scored) and diagnostics."""

    window: Window
    status: str
    diagnostics: dict[str, Any]


class StreamProcessor:
    """normalise -> window -> diagnostics for one stream at native ``rate`` Hz."""

    def __init__(self, rate: int, cfg: WindowConfig, min_seconds: float = 0.0) -> None:
        self.cfg = cfg
        self.normaliser = Normaliser(rate)
        self.windower = Windower(cfg.window_seconds, cfg.hop_seconds, max(cfg.min_final_seconds, min_seconds))
        self.vad = VadParams(cfg.silence_db, cfg.vad_floor_db, cfg.vad_snr_db, cfg.min_active)
        self.invalid_samples = 0

    def push(self, chunk: AudioChunk) -> list[Pending]:
        return self._windows(self.normaliser.push(chunk), final=False)

    def flush(self) -> list[Pending]:
        return self._windows(self.normaliser.flush(), final=True)

    def push_normalised(self, seg: Segment, final: bool = False) -> list[Pending]:
        """Windows of audio already at the model's rates (a benchmark that resampled once), bypassing
        the normaliser; ``final=True`` ends the stream (then nothing more may be pushed)."""
        return self._windows(seg, final)

    def _windows(self, seg: Segment, final: bool) -> list[Pending]:
        self.invalid_samples += seg.invalid
        windows = self.windower.push(seg)
        if final:
            windows += self.windower.flush()
        out = []
        for w in windows:
            status, diag = analyse(w.wave48, w.rate, w.dropped_seconds, self.vad)
            diag["loss_ratio"] = round(w.loss_ratio, 4)
            out.append(Pending(w, status, diag))
        return out


class StreamResults:
    """Rolling MOS, alert state and message numbering of one stream."""

    def __init__(self, name: str, agg: AggregateConfig, alerts: AlertConfig) -> None:
        self.rolling = RollingMos(agg.horizon_seconds, agg.weighting)
        self.alert = AlertState(alerts.threshold, alerts.hysteresis, alerts.min_duration_seconds)
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
            since = self.alert.duration(w.t_end)
            event = self.alert.update(w.t_end, roll.mos)
            if event is not None:
                out.append(
                    self.messages.alert(
                        event=event,
                        t=w.t_end,
                        rolling_mos=roll.mos,
                        threshold=self.alerts.threshold,
                        duration_seconds=since,
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
