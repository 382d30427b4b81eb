"""WebRTC ingest: one published audio track of one aiortc peer connection as a :class:`Source`.

A browser (or any WebRTC peer) sends an SDP offer; :func:`accept_offer` answers it and returns a
:class:`WebRTCSource` that yields the received audio as mono float32 chunks at 48 kHz (Opus's
native rate: nothing is resampled here).

What aiortc does not do for us, and this module does:

- The first audio track of the offer is consumed by a pump task as soon as it exists: aiortc's
  per-track frame queue is unbounded, so an unconsumed track grows without limit. Every other media
  section (video, further audio tracks) is answered ``inactive``, so no frames are ever decoded or
  queued for it.
- Between the pump and :meth:`WebRTCSource.recv` sits a bounded buffer with a drop-oldest policy;
  the samples it drops are reported in the next chunk's ``dropped``.
- Packet loss shows as a jump in the RTP timestamps of consecutive decoded frames (or blocks of
  them: the batched hand-off delivers mono :class:`~samos.monitor.sources.opus_plc.PcmBlock` runs of
  several packets); the missing samples are reported in ``dropped`` too. Where the decoder conceals
  lost packets (the batched hand-off's Opus decoder, :mod:`samos.monitor.sources.opus_plc`), the
  concealment frames fill the gap and are reported as the chunk's ``concealed`` samples instead.
- A track does not end when the sender's media ends (only when the connection closes), so the
  source ends after an inactivity timeout, or when the connection fails or closes.

Cost per 20 ms frame matters: a monitor ingests 50 frames per second per peer on one event loop.
The pump keeps no per-frame timer (one watchdog per source checks for inactivity), frames are
down-mixed without float64 temporaries, and :meth:`WebRTCSource.recv` hands out ``batch_seconds``
of audio at a time, so everything downstream runs a few times per second per stream, not 50.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import numpy as np

try:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
    from aiortc import sdp as aiortc_sdp
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"WebRTC ingest needs aiortc: pip install 'samos[webrtc]' ({e})") from e

import av

from samos.audio import SPEC_RATE
from samos.monitor.aio import within
from samos.monitor.source import AudioChunk, SourceEnded
from samos.monitor.sources import handoff, jitter, srtp_inline
from samos.monitor.sources.opus_plc import CONCEALED, PcmBlock

log = logging.getLogger(__name__)

WEBRTC_RATE = SPEC_RATE
"""Opus decodes at 48 kHz: the source's native rate, Hz."""
_SENDING = (None, "sendrecv", "sendonly")
"""SDP directions (as written by the offerer) under which the offerer sends media."""


class OfferError(ValueError):
    """An SDP offer that cannot be answered (malformed, no audio to receive, no common codec)."""


MAX_JOIN_SECONDS = 1.0
"""At most this much queued audio (s; 50 frames of 20 ms, or the blocks holding them) is returned by
one ``recv``."""


@dataclass(frozen=True)
class WebRTCOptions:
    """Timing and buffering of one WebRTC source.

    ``connect_timeout``: seconds to wait for the first audio frame after the answer.
    ``inactivity_timeout``: seconds without a frame after which the stream is declared ended.
    ``buffer_seconds``: audio held between the pump and ``recv`` before the oldest is dropped.
    ``close_timeout``: seconds to wait for the pump task and the peer connection to stop.
    ``batch_seconds``: ``recv`` waits until this much audio is buffered, or until the oldest buffered
    frame is this old, before it returns: the latency it adds is at most this, while the work per
    second downstream drops by the same factor. 0: return each frame as it arrives.
    """

    connect_timeout: float = 20.0
    inactivity_timeout: float = 5.0
    buffer_seconds: float = 5.0
    close_timeout: float = 5.0
    batch_seconds: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.batch_seconds <= 1.0:
            raise ValueError(f"WebRTCOptions.batch_seconds must be in [0, 1] s, got {self.batch_seconds!r}")
        for key in ("connect_timeout", "inactivity_timeout", "buffer_seconds", "close_timeout"):
            value = getattr(self, key)
            if not value > 0:
                raise ValueError(f"WebRTCOptions.{key} must be > 0 seconds, got {value!r}")


@dataclass
class WebRTCStats:
    """Counters of one source (samples at 48 kHz)."""

    frames: int = 0
    """Items taken from the track: decoded frames, or blocks of them (the batched hand-off)."""
    samples: int = 0
    lost_samples: int = 0
    """Samples missing from the RTP timeline (packet loss)."""
    overflow_samples: int = 0
    """Samples dropped because the consumer fell behind by more than ``buffer_seconds``."""
    concealed_samples: int = 0
    """Samples of lost audio the decoder concealed (Opus PLC/FEC) rather than left out."""
    end_reason: str | None = None
    started: float = field(default_factory=time.monotonic)


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Decoded audio frame -> mono float32 ``[samples]`` in [-1, 1].

    aiortc's Opus decoder gives packed ``s16`` stereo: ``to_ndarray()`` is ``(1, samples * 2)``,
    interleaved. Planar formats give ``(channels, samples)``. Channels are averaged.
    """
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if data.dtype == np.int16 and channels == 2 and not frame.format.is_planar:  # what Opus gives: fast path
        pairs = data.reshape(-1, 2)
        return (pairs[:, 0].astype(np.float32) + pairs[:, 1]) * np.float32(0.5 / 32768)
    if frame.format.is_planar:
        planes = data.reshape(channels, -1)
    else:
        planes = data.reshape(-1, channels).T
    mono = planes.mean(axis=0, dtype=np.float64) if channels > 1 else planes[0].astype(np.float64)
    if data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)  # type: ignore[type-var]
        mono = mono / float(max(abs(info.min), info.max))
    return mono.astype(np.float32)


class _Timeline:
    """Turns the RTP timestamps of consecutive frames into counts of missing samples at 48 kHz."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.expected: int | None = None

    def gap(self, pts: int | None, time_base: object | None, samples: int) -> int:
        """Samples missing before a frame that starts at ``pts * time_base`` seconds and holds
        ``samples`` samples; 0 for the first frame or when the frame carries no timestamp."""
        if pts is None or time_base is None:
            if self.expected is not None:
                self.expected += samples
            return 0
        num, den = time_base.numerator, time_base.denominator  # type: ignore[attr-defined]
        # exact: round(pts * num / den * rate), half up, in integers (no Fraction per frame)
        start = (2 * pts * num * self.rate + den) // (2 * den)
        missing = 0 if self.expected is None else max(0, start - self.expected)
        self.expected = max(start + samples, self.expected or 0)
        return missing


class WebRTCSource:
    """The audio of one WebRTC peer connection, as a :class:`~samos.monitor.source.Source`.

    Chunks are mono float32 ``[n * 960]`` (whole 20 ms frames; about ``batch_seconds`` of them) at
    48 kHz, ``dropped`` counts samples lost to packet loss or buffer overflow just before the chunk,
    ``concealed`` the chunk's first samples that are the decoder's concealment of lost packets.
    Build it with :func:`accept_offer`.
    """

    kind = "webrtc"
    rate = WEBRTC_RATE

    def __init__(self, pc: RTCPeerConnection, name: str, options: WebRTCOptions | None = None) -> None:
        self.name = name
        self.options = options or WebRTCOptions()
        self.stats = WebRTCStats()
        self._pc = pc
        self._track: MediaStreamTrack | None = None
        self._receiver: RTCRtpReceiver | None = None
        self._chunks: deque[AudioChunk] = deque()
        self._buffered = 0
        self._pending_drop = 0
        self._wakeup = asyncio.Event()
        self._ended = asyncio.Event()
        self._closed = False
        self._pump_task: asyncio.Task[None] | None = None
        self._pc_close_task: asyncio.Task[None] | None = None
        self._timeline = _Timeline(self.rate)
        self._batch_samples = max(1, round(self.options.batch_seconds * self.rate))
        self._last_frame = -1.0  # monotonic s of the last frame from the track
        self._stalled: str | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        pc.on("connectionstatechange", self._on_connection_state)

    # ------------------------------------------------------------------ Source protocol
    async def recv(self) -> AudioChunk:
        """Next chunk, waiting for it (and for up to ``batch_seconds`` of audio, see
        :class:`WebRTCOptions`); raises :class:`SourceEnded` once the stream is over and everything
        buffered has been returned."""
        batch = self.options.batch_seconds
        while not self._ready():
            if self._ended.is_set() and not self._chunks:
                raise SourceEnded(f"{self.name}: {self.stats.end_reason or 'ended'}")
            self._wakeup.clear()
            if not self._chunks:
                await self._wakeup.wait()
                continue
            try:
                await within(self._wakeup.wait(), self._chunks[0].t_capture + batch - time.monotonic())
            except TimeoutError:
                break  # the oldest frame has waited batch_seconds: hand out what there is
        chunk = self._chunks.popleft()
        if self._chunks:
            chunk = self._join(chunk)
        self._buffered -= chunk.frames
        return chunk

    def _ready(self) -> bool:
        """A chunk may be handed out now: a full batch is buffered, the oldest frame waited long
        enough, or no more audio will come."""
        if not self._chunks:
            return False
        return (
            self._buffered >= self._batch_samples
            or self._ended.is_set()
            or time.monotonic() >= self._chunks[0].t_capture + self.options.batch_seconds
        )

    def _join(self, first: AudioChunk) -> AudioChunk:
        """``first`` and the chunks queued right after it, as one chunk (up to, not including, the next
        one that follows lost audio, so every gap and concealment stays where it was). A reader that
        keeps up gets about ``batch_seconds`` per call; one that fell behind gets the backlog at once
        (up to ``MAX_JOIN_SECONDS``), so the per-chunk work downstream shrinks exactly when the loop is
        loaded."""
        parts = [first.samples]
        concealed, whole = first.concealed, first.concealed == first.frames  # whole: all concealed so far
        last = first
        room = round(MAX_JOIN_SECONDS * self.rate) - first.frames
        while self._chunks:
            nxt = self._chunks[0]
            if nxt.dropped or (nxt.concealed and not whole) or nxt.frames > room:
                break
            room -= nxt.frames
            parts.append(self._chunks.popleft().samples)
            concealed += nxt.concealed
            whole = whole and nxt.concealed == nxt.frames
            last = nxt
        if len(parts) == 1:
            return first
        return AudioChunk(np.concatenate(parts), first.rate, first.dropped, last.t_capture, concealed)

    async def close(self) -> None:
        """Stop the pump, discard buffered audio and close the peer connection (idempotent, bounded
        by ``close_timeout``)."""
        if self._closed:
            return
        self._closed = True
        self._finish("closed by the monitor")
        self._chunks.clear()  # nobody reads after close(): recv() raises SourceEnded from now on
        self._buffered = 0
        task = self._pump_task
        if task is not None and not task.done():
            task.cancel()
            _, pending = await asyncio.wait({task}, timeout=self.options.close_timeout)
            if pending:
                log.warning("%s: pump task did not stop within %.1f s", self.name, self.options.close_timeout)
        await self._close_pc()

    # ------------------------------------------------------------------ state
    @property
    def ended(self) -> bool:
        """True once no more audio will arrive (chunks may still be buffered)."""
        return self._ended.is_set()

    async def wait_ended(self) -> None:
        """Return when the stream has ended (peer gone, inactivity, or :meth:`close`)."""
        await self._ended.wait()

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    async def packets_lost(self) -> int | None:
        """Cumulative RTP packets lost as the receiver counts them (sequence gaps), or None."""
        if self._receiver is None:
            return None
        report = await self._receiver.getStats()
        lost = [
            getattr(s, "packetsLost", None)
            for s in report.values()
            if getattr(s, "type", "") == "inbound-rtp"
        ]
        counts = [int(x) for x in lost if x is not None]
        return sum(counts) if counts else None

    # ------------------------------------------------------------------ internals
    def _attach(self, track: MediaStreamTrack, receiver: RTCRtpReceiver) -> None:
        """Start consuming ``track`` right away (its queue in aiortc is unbounded)."""
        self._track = track
        self._receiver = receiver
        self._pump_task = asyncio.create_task(self._pump(track), name=f"webrtc-pump:{self.name}")

    def _finish(self, reason: str) -> None:
        if not self._ended.is_set():
            self.stats.end_reason = reason
            self._ended.set()
            self._wakeup.set()
            log.info("%s: stream ended (%s)", self.name, reason)

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state in ("failed", "closed"):
            # recv() ends now; the pump notices within inactivity_timeout and closes the connection.
            self._finish(f"peer connection {state}")

    async def _pump(self, track: MediaStreamTrack) -> None:
        reason = "pump cancelled"
        self._arm_watchdog(self.options.connect_timeout)
        try:
            while not self._ended.is_set():
                try:
                    frame = cast(av.AudioFrame | PcmBlock, await track.recv())
                except MediaStreamError:
                    reason = "peer closed the track"
                    break
                except asyncio.CancelledError:
                    if self._stalled is None:
                        raise  # close() or shutdown
                    current = asyncio.current_task()
                    if current is not None and hasattr(current, "uncancel"):  # 3.11+
                        current.uncancel()
                    reason = self._stalled
                    break
                if self._last_frame < 0 and self._watchdog is not None:  # the first frame: now
                    self._watchdog.cancel()  # the inactivity timeout applies
                    self._arm_watchdog(self.options.inactivity_timeout)
                self._last_frame = time.monotonic()
                if self._shed_backlog(track, frame):
                    continue
                if not self._push(frame):
                    reason = "unsupported audio frame"
                    break
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._finish(reason)
        # The stream is over for good: free the connection now rather than when close() is called
        # (not reached on cancellation, where close() does it).
        await self._close_pc()

    def _arm_watchdog(self, delay: float) -> None:
        """One timer per source instead of one per frame (see :meth:`_check_stall`)."""
        self._watchdog = asyncio.get_running_loop().call_later(delay, self._check_stall)

    def _check_stall(self) -> None:
        """Stop the pump when no frame came for ``connect_timeout`` (none yet) or ``inactivity_timeout``
        seconds; otherwise check again when the latter would run out."""
        task = self._pump_task
        if task is None or task.done():
            return
        if self._last_frame >= 0:  # audio came: the inactivity timeout applies
            limit = self.options.inactivity_timeout
            idle = time.monotonic() - self._last_frame
            if idle < limit:
                self._arm_watchdog(limit - idle)
                return
        else:
            limit = self.options.connect_timeout
        self._stalled = f"no audio for {limit:g} s"
        task.cancel()

    async def _close_pc(self) -> None:
        """Close the peer connection once; callers only wait (a cancelled waiter leaves it running)."""
        if self._pc_close_task is None:
            self._pc_close_task = asyncio.create_task(self._pc.close(), name=f"webrtc-close:{self.name}")
        task = self._pc_close_task
        done, _ = await asyncio.wait({task}, timeout=self.options.close_timeout)
        if not done:
            log.warning("%s: peer connection did not close in %.1f s", self.name, self.options.close_timeout)
        elif not task.cancelled() and task.exception() is not None:
            log.warning("%s: closing the peer connection failed: %r", self.name, task.exception())

    def _shed_backlog(self, track: MediaStreamTrack, frame: av.AudioFrame | PcmBlock) -> bool:
        """Bound aiortc's own decoded-frame queue (unbounded) to ``buffer_seconds``.

        When the event loop falls behind, frames pile up there faster than the pump takes them.
        Beyond the limit, ``frame`` (the oldest) and the next oldest are dropped and counted as
        overflow, as in our own buffer: their samples reach the next chunk's ``dropped`` and the
        RTP timeline stays exact. Returns True when ``frame`` was dropped.
        """
        queue = getattr(track, "_queue", None)
        # in items of this one's length: 20 ms Opus frames, or the batched hand-off's blocks
        limit = max(1, int(self.options.buffer_seconds * self.rate / max(1, int(frame.samples))))
        if not isinstance(queue, asyncio.Queue) or queue.qsize() <= limit:
            return False
        old: av.AudioFrame | PcmBlock | None = frame
        while old is not None:
            samples = int(old.samples)
            lost = self._timeline.gap(old.pts, old.time_base, samples)
            self.stats.lost_samples += lost
            self.stats.overflow_samples += samples
            self._pending_drop += lost + samples
            if queue.qsize() <= limit:
                break
            old = queue.get_nowait()
            if old is None:  # aiortc's end-of-track marker is always the last item: keep it
                queue.put_nowait(None)
        return True

    def _push(self, frame: av.AudioFrame | PcmBlock) -> bool:
        """Buffer one item from the track: an ``AudioFrame`` (aiortc's decoder) or a mono
        :class:`PcmBlock` of consecutive packets (the batched hand-off's); False: unsupported."""
        if self._ended.is_set():
            return True  # SourceEnded may already have been raised: nothing may follow it
        if frame.sample_rate != self.rate:
            log.error(
                "%s: got a %d Hz frame; only %d Hz (Opus) is accepted",
                self.name,
                frame.sample_rate,
                self.rate,
            )
            return False
        if isinstance(frame, PcmBlock):  # already mono; concealment, if any, at its start
            samples, concealed = frame.mono, frame.concealed
        else:
            samples = frame_to_mono(frame)
            concealed = len(samples) if getattr(frame, "opaque", None) == CONCEALED else 0
        lost = self._timeline.gap(frame.pts, frame.time_base, len(samples))
        self.stats.frames += 1
        self.stats.samples += len(samples)
        self.stats.lost_samples += lost
        self.stats.concealed_samples += concealed
        self._pending_drop += lost
        limit = int(self.options.buffer_seconds * self.rate)
        while self._chunks and self._buffered + len(samples) > limit:
            old = self._chunks.popleft()
            self._buffered -= old.frames
            self._pending_drop += old.frames + old.dropped
            self.stats.overflow_samples += old.frames
        chunk = AudioChunk(
            samples=samples,
            rate=self.rate,
            dropped=self._pending_drop,
            t_capture=time.monotonic(),
            concealed=concealed,
        )
        self._pending_drop = 0
        self._chunks.append(chunk)
        self._buffered += chunk.frames
        if len(self._chunks) == 1 or self._buffered >= self._batch_samples:
            self._wakeup.set()  # a first frame starts recv's batch timer; a full batch ends it
        return True


def _check_offer(sdp_text: str, sdp_type: str) -> None:
    """Validate an offer before aiortc sees it; raises :class:`OfferError` with a readable message."""
    if sdp_type != "offer":
        raise OfferError(f"expected an SDP of type 'offer', got {sdp_type!r}")
    if not sdp_text.strip().startswith("v=0"):
        raise OfferError("malformed SDP: it must start with 'v=0'")
    try:
        description = aiortc_sdp.SessionDescription.parse(sdp_text)
    except Exception as e:  # noqa: BLE001 - aiortc's parser raises assorted errors on bad input
        raise OfferError(f"malformed SDP: {type(e).__name__}: {e}".rstrip(": ")) from None
    if not description.media:
        raise OfferError("malformed SDP: it has no media sections")
    sending_audio = [m for m in description.media if m.kind == "audio" and m.direction in _SENDING]
    if not sending_audio:
        raise OfferError("the offer sends no audio: add a microphone track (audio, sendonly or sendrecv)")
    if not any(c.mimeType.lower() == "audio/opus" for m in sending_audio for c in m.rtp.codecs):
        raise OfferError("the offer's audio has no Opus codec (only Opus at 48 kHz is accepted)")


def _opus_preference() -> list:
    caps = RTCRtpReceiver.getCapabilities("audio")
    assert caps is not None
    return [c for c in caps.codecs if c.mimeType.lower() == "audio/opus"]


async def accept_offer(
    sdp_text: str,
    sdp_type: str,
    name: str,
    options: WebRTCOptions | None = None,
    rtc_configuration: RTCConfiguration | None = None,
) -> tuple[WebRTCSource, RTCSessionDescription]:
    """Answer an SDP offer; returns the source (already consuming its track) and the answer.

    Raises :class:`OfferError` when the offer is malformed, sends no audio or has no Opus.
    The caller owns the source and must eventually ``await source.close()``.
    """
    _check_offer(sdp_text, sdp_type)
    pc = RTCPeerConnection(rtc_configuration)
    source = WebRTCSource(pc, name, options)
    try:
        # A receive-only audio transceiver restricted to Opus takes the offer's first audio section.
        pc.addTransceiver("audio", direction="recvonly").setCodecPreferences(_opus_preference())
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp_text, type="offer"))
        except Exception as e:  # noqa: BLE001 - aiortc raises ValueError/OperationError/... on bad SDP
            raise OfferError(f"cannot apply the offer: {e or type(e).__name__}") from None
        accepted = False
        inline = None  # the DTLS transport whose SRTP is handled inline (the batched path)
        for transceiver in pc.getTransceivers():
            track = transceiver.receiver.track
            if transceiver.kind == "audio" and track is not None and not accepted:
                if handoff.current() == "batched":  # samos's receive path: lost packets are skipped,
                    jitter.install(transceiver.receiver)
                    handoff.install(transceiver.receiver)  # no lock per packet on its way,
                    inline = transceiver.receiver.transport  # nor a queue and task step (below)
                source._attach(track, transceiver.receiver)
                accepted = True
            else:
                transceiver.direction = "inactive"  # refused: nothing will be decoded or queued
        if not accepted:
            raise OfferError("the offer sends no audio track")
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)  # gathers the sockets srtp_inline demultiplexes
        if inline is not None:
            srtp_inline.install(inline)
    except BaseException:
        await source.close()
        raise
    return source, pc.localDescription
