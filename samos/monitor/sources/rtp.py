"""Plain RTP over UDP as a :class:`~samos.monitor.source.Source`: what SFUs and PBXs forward.

Janus' RTP forwarders, mediasoup's PlainTransport, FreeSWITCH, Asterisk's external media, GStreamer
and ffmpeg all send one audio stream as RTP packets to a UDP port. :class:`RtpSource` listens on
that port and yields the decoded audio at the codec's rate:

- **Codecs** (:data:`CODECS`): ``opus`` (48 kHz), ``pcmu``/``pcma`` (G.711, 8 kHz), ``g722``
  (16 kHz audio on an 8 kHz RTP clock) are decoded with aiortc's decoders (libopus and FFmpeg's
  through PyAV); ``l16`` is linear PCM in network byte order (RFC 3551) at the ``rate`` given.
- **Order**: a :class:`~samos.monitor.sources.rtp_jitter.JitterBuffer` puts packets back in sequence
  order, waiting at most ``jitter_seconds`` for a missing one.
- **Stream clock**: the RTP timestamps, not arrival times. A packet lost (a gap in the sequence
  numbers) leaves a gap in the timestamps: its length in samples is reported in the next chunk's
  ``dropped`` (audio lost, counted into the window's ``dropped_seconds``); for Opus (with
  ``RtpOptions.conceal``) libopus conceals it instead (PLC, the next packet's in-band FEC; at most
  0.5 s of a gap, :mod:`samos.monitor.sources.opus_plc`) and the concealed samples start the chunk
  as its ``concealed`` samples, still counted as lost. A gap in the timestamps
  *without* a gap in the sequence numbers is discontinuous transmission (Opus DTX, silence
  suppression): that many samples of silence are put in its place, not counted as lost. A jump of
  more than ``max_gap_seconds`` (a sender that paused, or a bogus timestamp) starts a new timeline
  instead (``stats.timeline_resyncs``).
- **SSRC**: the first sender's SSRC is followed; a different SSRC takes over after
  ``ssrc_switch_packets`` consecutive packets of it with none of the current one between (a
  re-INVITE, a transfer, a restarted forwarder); its packets up to then are kept. The new SSRC's
  audio continues the stream where the old one stopped.
- **Bad input is counted and dropped** (:class:`RtpStats`), never raised: datagrams that are not RTP,
  RTCP on the same port, packets larger than ``max_packet_bytes``, payload types other than the one
  expected, packets from an address other than the sender's (the first sender is latched until it
  has been silent for ``relatch_seconds``), more than ``max_packet_rate`` packets per second from
  the sender, late and duplicate packets, payloads the decoder refuses. A packet of another payload
  type in the stream's own sequence (DTMF as RFC 4733 telephone-events) keeps its sequence number's
  place, so it is not mistaken for a lost packet.

Datagrams are handled on the event loop (asyncio's datagram protocol: no thread); decoding happens
in :meth:`RtpSource.recv`, ``batch_seconds`` of audio at a time. Released packets wait in a bounded
queue (``buffer_seconds``); when the reader falls behind the oldest are dropped and counted as lost.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from samos.monitor.source import AudioChunk, SourceEnded, SourceError
from samos.monitor.sources.buffer import ChunkQueue
from samos.monitor.sources.rtp_codecs import CODECS, Decoder
from samos.monitor.sources.rtp_jitter import JitterBuffer, Released
from samos.monitor.sources.rtp_spec import RtpSpec

log = logging.getLogger(__name__)

DYNAMIC_PT = range(96, 128)
"""Dynamic RTP payload types (RFC 3551)."""
RECEIVE_BUFFER_BYTES = 1 << 20
"""Kernel receive buffer asked for each RTP socket (the system caps it at net.core.rmem_max)."""
_EVENT_PAYLOAD = 4
"""Payload bytes of a telephone-event (RFC 4733) packet: never taken as the audio's payload type."""


@dataclass(frozen=True)
class RtpOptions:
    """Receive-side limits of one RTP source (seconds, packets, bytes).

    ``jitter_seconds``: how long a missing packet may hold back later ones (added latency only on
    reordering or loss). ``batch_seconds``: ``recv`` returns this much audio at a time (or what it
    has once the oldest sample waited this long). ``buffer_seconds``: audio (as packets of 20 ms)
    waiting for the reader before the oldest is dropped. ``max_packet_bytes``: larger datagrams are
    dropped. ``max_packet_rate``: packets per second accepted from the sender (a burst of half a
    second more is allowed). ``relatch_seconds``: silence of the current sender after which another
    address may take over. ``ssrc_switch_packets``: consecutive packets of a new SSRC that make it
    the current one. ``max_gap_seconds``: a timestamp jump larger than this starts a new timeline.
    ``conceal``: Opus packets lost are concealed by libopus (PLC, in-band FEC) where it loads, as on
    the WebRTC path; False: they are a gap (silence downstream).
    """

    jitter_seconds: float = 0.06
    batch_seconds: float = 0.1
    buffer_seconds: float = 5.0
    max_packet_bytes: int = 8192
    max_packet_rate: float = 400.0
    relatch_seconds: float = 2.0
    ssrc_switch_packets: int = 3
    max_gap_seconds: float = 5.0
    conceal: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.jitter_seconds <= 2.0:
            raise ValueError(f"jitter_seconds must be in [0, 2], got {self.jitter_seconds}")
        if not 0 <= self.batch_seconds <= 1.0:
            raise ValueError(f"batch_seconds must be in [0, 1], got {self.batch_seconds}")
        for key in ("buffer_seconds", "max_packet_rate", "relatch_seconds", "max_gap_seconds"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)!r}")
        if self.max_packet_bytes < 64 or self.ssrc_switch_packets < 1:
            raise ValueError("max_packet_bytes must be >= 64 and ssrc_switch_packets >= 1")


@dataclass
class RtpStats:
    """Counters of one RTP source. Packets unless named otherwise; samples at the audio rate."""

    packets: int = 0
    """RTP packets accepted into the jitter buffer."""
    bytes: int = 0
    lost_packets: int = 0
    """Sequence numbers never received (given up by the jitter buffer) or dropped for a slow reader."""
    late: int = 0
    duplicate: int = 0
    jumps: int = 0
    """Packets far outside the expected sequence (refused; two in a row restart the sequence)."""
    restarts: int = 0
    malformed: int = 0
    """Datagrams that are not RTP version 2."""
    rtcp: int = 0
    oversized: int = 0
    wrong_pt: int = 0
    other_ssrc: int = 0
    """Packets of an SSRC that did not (yet) take over."""
    other_address: int = 0
    flood: int = 0
    """Packets over ``max_packet_rate``."""
    overflow: int = 0
    """Released packets dropped because the reader fell behind (also in ``lost_packets``)."""
    decode_errors: int = 0
    ssrc_changes: int = 0
    timeline_resyncs: int = 0
    samples: int = 0
    lost_samples: int = 0
    """Samples of lost packets (concealed or not)."""
    concealed_samples: int = 0
    """Of ``lost_samples``, those the Opus decoder concealed (PLC, FEC) instead of leaving a gap."""
    silence_samples: int = 0
    """Samples of silence put in place of discontinuous transmission (not lost)."""
    payload_type: int | None = None
    ssrc: int | None = None
    sender: tuple[str, int] | None = None
    end_reason: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def loss_rate(self) -> float:
        """Lost / (received + lost) packets, 0 before any packet."""
        total = self.packets + self.lost_packets
        return self.lost_packets / total if total else 0.0


class _Timeline:
    """RTP timestamps -> positions in the decoded audio (samples at ``rate``)."""

    def __init__(self, rate: int, clock: int, max_gap: int) -> None:
        self.rate, self.clock, self.max_gap = rate, clock, max_gap
        self.expected = 0  # audio samples emitted so far
        self._base: int | None = None  # RTP timestamp at position ``_origin``
        self._origin = 0
        self.resyncs = 0

    def restart(self) -> None:
        """The next timestamp continues the audio where it is (a new SSRC or sequence)."""
        self._base = None

    @property
    def fresh(self) -> bool:
        """No timestamp placed since the start or the last :meth:`restart`."""
        return self._base is None

    def place(self, timestamp: int) -> int:
        """Samples between the audio so far and a packet starting at ``timestamp`` (negative: it
        overlaps what was emitted)."""
        if self._base is None:
            self._base, self._origin = timestamp, self.expected
        start = self._origin + (timestamp - self._base) * self.rate // self.clock
        gap = start - self.expected
        if abs(gap) > self.max_gap:
            self.resyncs += 1
            self._base, self._origin = timestamp, self.expected
            return 0
        return gap


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, source: RtpSource) -> None:
        self.source = source

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.source._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("%s: UDP error %s", self.source.name, exc)


class RtpSource:
    """One RTP audio stream received on a UDP port (see the module doc). Open with :meth:`open`.

    Chunks are float32 ``[n]`` (``[n, channels]`` for multichannel L16) at ``rate`` Hz; ``dropped``
    counts samples lost (packet loss, or dropped for a slow reader) just before the chunk.
    """

    kind = "rtp"

    def __init__(self, spec: RtpSpec, options: RtpOptions | None = None) -> None:
        self.spec = spec
        self.options = options or RtpOptions()
        self.name = spec.name or f"rtp-{spec.port}"
        self.rate = spec.audio_rate
        self.stats = RtpStats()
        self._transport: asyncio.DatagramTransport | None = None
        self._jitter = JitterBuffer(self.options.jitter_seconds)
        self._epoch = 0  # +1 per SSRC switch: released packets of a new epoch restart the timeline
        # (epoch, packet, anchor): ``anchor`` is the RTP timestamp where audio dropped for a slow
        # reader began just before the packet (None: none dropped), so the gap is placed even when
        # the dropped packets were the first of the stream.
        self._released: deque[tuple[int, Released, int | None]] = deque()
        self._max_released = max(16, round(self.options.buffer_seconds / 0.02))
        self._pieces = ChunkQueue(self.rate, self.options.batch_seconds)
        self._decoder: Decoder | None = None
        self._decoder_epoch = -1
        max_gap = round(self.options.max_gap_seconds * self.rate)
        self._timeline = _Timeline(self.rate, spec.clock, max_gap)
        self._loss_pending = False  # a packet failed to decode: the next gap is loss
        self._pt: int | None = spec.pt if spec.pt is not None else CODECS[spec.codec].pt
        self.stats.payload_type = self._pt
        self._candidate: int | None = None
        self._candidate_packets: list[tuple[int, int, bytes, float]] = []
        self._tokens = self.options.max_packet_rate * 0.5
        self._token_time = time.monotonic()
        self._last_packet = -1.0  # monotonic time of the last accepted packet
        self._timer: asyncio.TimerHandle | None = None
        self._wakeup = asyncio.Event()
        self._ended = False
        self._closed = False

    @classmethod
    async def open(cls, spec: RtpSpec | str, options: RtpOptions | None = None) -> RtpSource:
        """Bind the UDP port; raises :class:`SourceError` when it cannot."""
        if isinstance(spec, str):
            spec = RtpSpec.parse(spec)
        source = cls(spec, options)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(source), local_addr=(spec.host, spec.port)
            )
        except OSError as e:
            raise SourceError(f"RTP {spec.host}:{spec.port}: cannot listen ({e.strerror or e})") from None
        source._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # room for bursts while the loop is busy (capped by net.core.rmem_max)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            except OSError:
                pass
        return source

    @property
    def local_address(self) -> tuple[str, int]:
        """(host, port) the socket is bound to (the port is real when 0 was asked for)."""
        assert self._transport is not None, "open() the source first"
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    # ------------------------------------------------------------------ Source protocol
    async def recv(self) -> AudioChunk:
        """The next chunk of decoded audio (about ``batch_seconds``); raises :class:`SourceEnded`
        after :meth:`close`, or after ``idle`` seconds without a packet when the spec sets it."""
        while True:
            self._decode_released()
            if self._pieces.ready(time.monotonic()):
                return self._pieces.take()
            if self._ended:
                if self._pieces:
                    return self._pieces.take()
                raise SourceEnded(f"{self.name}: {self.stats.end_reason or 'ended'}")
            self._wakeup.clear()
            timeout = self._wait_limit()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                if self._idle_expired():
                    self._end(f"no RTP for {self.spec.idle:g} s")

    async def close(self) -> None:
        """Stop listening (idempotent); ``recv`` raises :class:`SourceEnded` from now on."""
        if self._closed:
            return
        self._closed = True
        self._end("closed by the monitor")
        self._pieces.clear()
        self._released.clear()
        if self._transport is not None:
            self._transport.close()

    # ------------------------------------------------------------------ receiving (on the loop)
    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._ended:
            return
        st, now = self.stats, time.monotonic()
        sender = (str(addr[0]), int(addr[1]))
        if st.sender is not None and sender != st.sender:
            if now - self._last_packet < self.options.relatch_seconds:
                st.other_address += 1
                return
            log.info("%s: sender %s:%d takes over from %s:%d", self.name, *sender, *st.sender)
        if len(data) > self.options.max_packet_bytes:
            st.oversized += 1
            return
        if not self._take_token(now):
            st.flood += 1
            return
        if len(data) >= 2 and 192 <= data[1] <= 223:  # RTCP (SR, RR, SDES, BYE, APP, feedback)
            st.rtcp += 1
            return
        from aiortc.rtp import RtpPacket

        try:
            packet = RtpPacket.parse(data)
        except Exception:  # noqa: BLE001 - hostile input: whatever aiortc's parser raises, it is dropped
            st.malformed += 1
            return
        if not self._payload_type_ok(packet.payload_type, len(packet.payload)):
            st.wrong_pt += 1
            if packet.ssrc == st.ssrc and sender == st.sender:  # e.g. DTMF in the audio's sequence
                self._jitter.push(packet.sequence_number, packet.timestamp, b"", now, filler=True)
                self._release(now)
            return
        if st.ssrc is not None and packet.ssrc != st.ssrc:
            if not self._ssrc_takes_over(packet, now):
                return
        else:
            self._candidate, self._candidate_packets = None, []
        if st.ssrc is None:
            st.ssrc = packet.ssrc
        st.sender = sender
        self._last_packet = now
        self._push(packet.sequence_number, packet.timestamp, packet.payload, now)

    def _push(self, seq: int, ts: int, payload: bytes, now: float) -> None:
        st = self.stats
        verdict = self._jitter.push(seq, ts, payload, now)
        if verdict == "late":
            st.late += 1
            return
        if verdict == "duplicate":
            st.duplicate += 1
            return
        if verdict == "jump":
            st.jumps += 1
            return
        if verdict == "restart":
            st.restarts += 1
        st.packets += 1
        st.bytes += len(payload)
        self._release(now)

    def _release(self, now: float) -> None:
        released = self._jitter.pop(now)
        if released:
            self._queue(released)
        self._arm_timer()

    def _queue(self, released: list[Released]) -> None:
        for r in released:
            self.stats.lost_packets += r.lost
            self._released.append((self._epoch, r, None))
        while len(self._released) > self._max_released:  # the reader fell behind: drop the oldest
            epoch, old, anchor = self._released.popleft()
            self.stats.overflow += 1
            self.stats.lost_packets += 1
            if self._released and self._released[0][0] == epoch:
                _, nxt, _ = self._released[0]
                nxt = replace(nxt, lost=nxt.lost + old.lost + 1, resync=nxt.resync or old.resync)
                start = anchor if anchor is not None else old.packet.timestamp
                self._released[0] = (epoch, nxt, start)
        self._wakeup.set()

    def _arm_timer(self) -> None:
        """One timer per source: pop the jitter buffer when its current hole is given up."""
        deadline = self._jitter.deadline()
        if deadline is None or (self._timer is not None and not self._timer.cancelled()):
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, deadline - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._ended:
            self._release(time.monotonic())

    def _take_token(self, now: float) -> bool:
        rate = self.options.max_packet_rate
        self._tokens = min(rate * 0.5, self._tokens + (now - self._token_time) * rate)
        self._token_time = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _payload_type_ok(self, pt: int, size: int) -> bool:
        if self._pt is not None:
            return pt == self._pt
        if pt in DYNAMIC_PT and size > _EVENT_PAYLOAD:  # the first dynamic audio payload type is ours
            self._pt = self.stats.payload_type = pt
            log.info("%s: taking RTP payload type %d as %s", self.name, pt, self.spec.codec)
            return True
        return False

    def _ssrc_takes_over(self, packet: Any, now: float) -> bool:
        """A packet of another SSRC: True when that SSRC now becomes the stream's (see module doc)."""
        st = self.stats
        if packet.ssrc != self._candidate:
            self._candidate, self._candidate_packets = packet.ssrc, []
        self._candidate_packets.append((packet.sequence_number, packet.timestamp, packet.payload, now))
        if len(self._candidate_packets) < self.options.ssrc_switch_packets:
            st.other_ssrc += 1
            return False
        log.info("%s: SSRC %08x takes over from %08x", self.name, packet.ssrc, st.ssrc)
        st.other_ssrc -= len(self._candidate_packets) - 1  # kept after all
        self._queue(self._jitter.drain())
        self._jitter = JitterBuffer(self.options.jitter_seconds)
        self._epoch += 1
        st.ssrc, st.ssrc_changes = packet.ssrc, st.ssrc_changes + 1
        for seq, ts, payload, t in self._candidate_packets[:-1]:
            self._push(seq, ts, payload, t)
        self._candidate, self._candidate_packets = None, []
        return True  # the caller pushes this packet

    # ------------------------------------------------------------------ decoding (in recv)
    def _decode_released(self) -> None:
        st = self.stats
        while self._released:
            epoch, r, anchor = self._released.popleft()
            if epoch != self._decoder_epoch or self._decoder is None:
                self._decoder = Decoder(self.spec.codec, self.rate, self.spec.channels, self.options.conceal)
                if self._decoder_epoch >= 0:
                    self._timeline.restart()
                self._decoder_epoch = epoch
            if r.resync:
                self._timeline.restart()
            if anchor is not None and self._timeline.fresh:
                self._timeline.place(anchor)  # the timeline starts where the dropped audio began
            lost = bool(r.lost or self._loss_pending) and not r.resync
            try:
                audio, concealed = self._decoder.decode_after(r.packet.payload, r.packet.timestamp, lost)
            except ValueError as e:
                st.decode_errors += 1
                self._loss_pending = True
                log.debug("%s: %s", self.name, e)
                continue
            before = self._timeline.resyncs
            gap = self._timeline.place(r.packet.timestamp)
            st.timeline_resyncs += self._timeline.resyncs - before
            dropped, kept = 0, min(concealed, max(gap, 0)) if lost else 0
            if kept < concealed:  # concealment the timeline has no room for (a resync): not used
                audio = np.concatenate([audio[:kept], audio[concealed:]])
            if gap > 0 and lost:
                dropped = gap - kept  # what the decoder did not conceal (over 0.5 s) stays a gap
                st.lost_samples += gap
                st.concealed_samples += kept
            elif gap > 0:  # timestamps moved on, sequence numbers did not: DTX / silence suppression
                silence = np.zeros((gap, *audio.shape[1:]), np.float32)
                audio = np.concatenate([silence, audio])
                st.silence_samples += gap
            elif gap < 0:  # overlaps audio already emitted: keep only the new part
                audio = audio[-gap:]
            self._loss_pending = False
            self._timeline.expected += dropped + len(audio)
            st.samples += len(audio) - kept
            self._pieces.put(audio, dropped, r.packet.arrival, kept)

    def _wait_limit(self) -> float | None:
        limits = []
        batch = self._pieces.wait_limit(time.monotonic())
        if batch is not None:
            limits.append(batch)
        if self.spec.idle is not None and self._last_packet >= 0:
            limits.append(self._last_packet + self.spec.idle - time.monotonic())
        return max(0.0, min(limits)) if limits else None

    def _idle_expired(self) -> bool:
        idle = self.spec.idle
        return idle is not None and self._last_packet >= 0 and time.monotonic() - self._last_packet >= idle

    def _end(self, reason: str) -> None:
        if not self._ended:
            self._ended = True
            self.stats.end_reason = reason
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._closed:  # what the jitter buffer still holds is audio too
                self._queue(self._jitter.drain())
            self._wakeup.set()
            log.info("%s: stream ended (%s)", self.name, reason)
