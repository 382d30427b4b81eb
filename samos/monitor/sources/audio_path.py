"""aiortc's handling of one audio track's RTP packets, as one plain call per packet.

For each decrypted RTP packet aiortc parses an ``RtpPacket`` (header extensions and all), routes it
through the DTLS transport's ``RtpRouter`` and runs ``RTCRtpReceiver._handle_rtp_packet``, two
coroutines deep. For an audio track without retransmissions that comes down to five things: the
sender's RTCP statistics (``StreamStatistics``, which the receiver reports), its active sources,
the jitter buffer, the timestamp mapper and the decoder's queue. :class:`AudioPath` does those five
things, in the same order and on the receiver's own objects, from the packet's fixed header (the
statistics with :func:`count`, which takes the datagram's arrival time where aiortc reads the clock
when it gets to the packet):
:func:`parse` checks a packet as ``RtpPacket.parse`` does but leaves the header extensions unparsed
(an audio receiver reads none of them once the packet is routed; routing by MID stays aiortc's).

:mod:`samos.monitor.sources.srtp_inline` calls it for packets whose SSRC the router already maps to
a receiver of the batched hand-off; anything else (a new SSRC, a retransmission, video, a receiver
not laid out as expected) still goes through aiortc's coroutines. Not done here: aiortc's per-packet
debug log line (``RTCRtpReceiver(audio) < RtpPacket(...)``).
"""

from __future__ import annotations

import datetime
import logging
import queue
from struct import unpack_from
from typing import Any

from aiortc.codecs import is_rtx
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.utils import uint16_gt

from samos.monitor.sources.jitter import AudioJitterBuffer

log = logging.getLogger(__name__)

_PRIVATE = "_RTCRtpReceiver__"
_NEEDED = (
    "kind",
    "codecs",
    "active_ssrc",
    "remote_streams",
    "jitter_buffer",
    "decoder_error",
    "decoder_queue",
    "decoder_thread",
    "timestamp_mapper",
    "nack_generator",
    "remote_bitrate_estimator",
)


_STATS_FIELDS = (
    "_clockrate",
    "_jitter_q4",
    "_last_arrival",
    "_last_timestamp",
    "base_seq",
    "max_seq",
    "cycles",
)


def count(stats: StreamStatistics, sequence_number: int, timestamp: int, arrival: float) -> None:
    """``StreamStatistics.add`` of a packet whose datagram arrived at ``arrival`` (``time.time()`` s).

    aiortc's ``add`` reads the clock itself, so a packet handled later than it arrived (the inline
    receiver handles a batch of datagrams every 100 ms) would look as if it arrived then: every packet
    of a batch at once, and the interarrival jitter reported to the sender (RTCP receiver reports,
    RFC 3550 A.8) 31 ms for a perfectly smooth stream of 20 ms packets (24 ms with 50 ms batches),
    instead of 0. Same fields, same arithmetic."""
    in_order = stats.max_seq is None or uint16_gt(sequence_number, stats.max_seq)
    stats.packets_received += 1
    if stats.base_seq is None:
        stats.base_seq = sequence_number
    if in_order:
        at = int(arrival * stats._clockrate)
        if stats.max_seq is not None and sequence_number < stats.max_seq:
            stats.cycles += 1 << 16
        stats.max_seq = sequence_number
        last = stats._last_timestamp
        if timestamp != last and stats.packets_received > 1:
            diff = abs((at - stats._last_arrival) - (timestamp - last))  # type: ignore[operator]
            stats._jitter_q4 += diff - ((stats._jitter_q4 + 8) >> 4)
        stats._last_arrival = at
        stats._last_timestamp = timestamp


class Packet:
    """What the statistics and the jitter buffer read of an RTP packet."""

    __slots__ = ("_data", "sequence_number", "timestamp")

    def __init__(self, sequence_number: int, timestamp: int, data: bytes) -> None:
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self._data = data


def parse(data: bytes) -> tuple[int, int, int, int, bytes]:
    """A decrypted RTP packet -> ``(payload_type, sequence_number, timestamp, ssrc, payload)``.

    Raises ValueError for what ``RtpPacket.parse`` refuses (short, not version 2, truncated CSRC list
    or header extension, impossible padding); the extension is skipped, not parsed."""
    if len(data) < 12:
        raise ValueError("RTP packet length is less than 12 bytes")
    first = data[0]
    if first >> 6 != 2:
        raise ValueError("RTP packet has invalid version")
    pos = 12 + 4 * (first & 0x0F)
    if len(data) < pos:
        raise ValueError("RTP packet has truncated CSRC")
    if first & 0x10:
        if len(data) < pos + 4:
            raise ValueError("RTP packet has truncated extension profile / length")
        pos += 4 + 4 * unpack_from("!H", data, pos + 2)[0]
        if len(data) < pos:
            raise ValueError("RTP packet has truncated extension value")
    end = len(data)
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > end - pos:
            raise ValueError("RTP packet padding length is invalid")
        end -= padding
    sequence_number, timestamp, ssrc = unpack_from("!HLL", data, 2)
    return data[1] & 0x7F, sequence_number, timestamp, ssrc, data[pos:end]


class AudioPath:
    """``RTCRtpReceiver._handle_rtp_packet`` of one audio receiver of the batched hand-off, for
    packets of codecs other than RTX (see the module doc). Build it with :meth:`of`."""

    __slots__ = (
        "_active",
        "_codecs",
        "_decoder_error",
        "_jitter",
        "_mapper",
        "_put",
        "_streams",
        "receiver",
    )

    def __init__(self, receiver: Any) -> None:
        self.receiver = receiver
        get = receiver.__getattribute__
        self._codecs: dict[int, Any] = get(_PRIVATE + "codecs")
        self._active: dict[int, Any] = get(_PRIVATE + "active_ssrc")
        self._streams: dict[int, StreamStatistics] = get(_PRIVATE + "remote_streams")
        self._jitter: AudioJitterBuffer = get(_PRIVATE + "jitter_buffer")
        self._decoder_error = get(_PRIVATE + "decoder_error")
        self._mapper = get(_PRIVATE + "timestamp_mapper")
        self._put = get(_PRIVATE + "decoder_queue").put

    @classmethod
    def of(cls, receiver: Any) -> AudioPath | None:
        """The path of ``receiver`` (an ``RTCRtpReceiver``), or None where it is not an audio
        receiver of the batched hand-off laid out as expected (it keeps aiortc's path then)."""
        if not all(hasattr(receiver, _PRIVATE + name) for name in _NEEDED) or not hasattr(
            receiver, "_enabled"
        ):
            return None
        get = receiver.__getattribute__
        if (
            not all(hasattr(StreamStatistics(48000), a) for a in _STATS_FIELDS)
            or get(_PRIVATE + "kind") != "audio"
            or get(_PRIVATE + "nack_generator") is not None
            or get(_PRIVATE + "remote_bitrate_estimator") is not None
            or not isinstance(get(_PRIVATE + "jitter_buffer"), AudioJitterBuffer)
            or not isinstance(get(_PRIVATE + "decoder_queue"), queue.SimpleQueue)
        ):
            return None
        return cls(receiver)

    def handle(
        self,
        payload_type: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        arrival: float,
        seen: datetime.datetime,
    ) -> bool:
        """Take one parsed packet (:func:`parse`) whose datagram arrived at ``arrival``
        (``time.time()`` s); ``seen`` is what the receiver records as its source's latest packet (aiortc:
        the time it handled it; the inline receiver: the time it handles the batch). False when it is
        one for aiortc's own path (a retransmission), True when it was handled (or dropped, as aiortc
        would drop it)."""
        receiver = self.receiver
        if not receiver._enabled:
            return True
        codec = self._codecs.get(payload_type)
        if codec is not None and is_rtx(codec):
            return False
        self._active[ssrc] = seen
        if codec is None:
            log.debug("RTP packet with unknown payload type %d dropped", payload_type)
            return True
        stats = self._streams.get(ssrc)
        if stats is None:
            stats = self._streams[ssrc] = StreamStatistics(codec.clockRate)
        count(stats, sequence_number, timestamp, arrival)
        _, frame = self._jitter.add(
            Packet(sequence_number, timestamp, payload)
        )  # audio: never a picture loss to report
        if self._decoder_error.is_set():
            self._decoder_error.clear()
        if frame is not None and receiver._RTCRtpReceiver__decoder_thread:
            frame.timestamp = self._mapper.map(frame.timestamp)
            self._put((codec, frame))
        return True
