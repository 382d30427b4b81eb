"""The one narrow interface every audio input implements: ``async recv() -> AudioChunk``.

Sound cards, WebRTC tracks, files and network streams are all a :class:`Source`. A source delivers
audio at its *native* rate (it never asks a device to resample); :mod:`samos.monitor.normalise`
turns it into mono float32 at the model's rates. ``recv`` raises :class:`SourceEnded` at the end of
the stream; ``close`` releases the device/connection, is idempotent, and makes later (and pending,
where the source can) ``recv`` calls raise :class:`SourceEnded`. The Monitor stops a stream by
cancelling the task awaiting ``recv`` and then calling ``close``, so ``recv`` must let
``CancelledError`` through.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


class SourceEnded(Exception):
    """Raised by :meth:`Source.recv` when the stream has no more audio."""


class SourceError(ValueError):
    """A source that cannot be opened or read (bad device name, unreadable file, ...)."""


@dataclass(frozen=True)
class AudioChunk:
    """A block of audio as captured.

    ``samples``: float32 (or integer PCM) ``[n]`` or ``[n, channels]`` at ``rate`` Hz.
    ``dropped``: samples (at ``rate``) known to be lost just before this chunk (device overflow,
    packet loss) and absent from ``samples``: the normaliser puts that much silence in their place.
    ``concealed``: how many of the *first* samples of ``samples`` are not received audio but the
    codec's concealment of lost audio (Opus PLC/FEC); they count as lost too.
    ``t_capture``: ``time.monotonic()`` when the chunk's last sample was captured (used for
    end-to-end latency).

    Once handed out, ``samples`` is the pipeline's: a source never writes it again (the stream path
    holds chunks, and views of them, across pushes; a sound card's buffer is copied in its callback).
    """

    samples: np.ndarray
    rate: int
    dropped: int = 0
    t_capture: float = field(default_factory=time.monotonic)
    concealed: int = 0

    def __post_init__(self) -> None:
        if self.samples.ndim not in (1, 2):
            raise ValueError(
                f"AudioChunk.samples must be [n] or [n, channels], got shape {self.samples.shape}"
            )
        if self.rate <= 0:
            raise ValueError(f"AudioChunk.rate must be positive, got {self.rate}")
        if self.dropped < 0:
            raise ValueError(f"AudioChunk.dropped must be >= 0, got {self.dropped}")
        if not 0 <= self.concealed <= self.samples.shape[0]:
            raise ValueError(
                f"AudioChunk.concealed must be in [0, {self.samples.shape[0]}] samples, got {self.concealed}"
            )

    @property
    def frames(self) -> int:
        """Number of sample frames (per channel)."""
        return int(self.samples.shape[0])


@runtime_checkable
class Source(Protocol):
    """An audio input. ``name`` names the stream, ``rate`` is the native rate in Hz, ``kind`` is
    ``"device"``, ``"webrtc"``, ``"file"`` ...; ``recv`` returns the next chunk or raises
    :class:`SourceEnded`."""

    name: str
    rate: int
    kind: str

    async def recv(self) -> AudioChunk: ...

    async def close(self) -> None: ...
