"""One audio track's RTP handling in one call: the same outcome as aiortc's parse and receiver."""

from __future__ import annotations

import datetime
import queue
import threading
from typing import Any

import pytest
from aiortc import (
    RTCCertificate,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
    RTCRtpReceiver,
    rtcrtpreceiver,
)
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket

from samos.monitor.sources import handoff, jitter
from samos.monitor.sources.audio_path import AudioPath, parse
from samos.monitor.sources.srtp_inline import drive

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
RTX = RTCRtpCodecParameters(mimeType="audio/rtx", clockRate=48000, payloadType=112, parameters={"apt": 111})


def packet(seq: int, ts: int, payload: bytes = b"\x7c\x01\x02", pt: int = 111, **kw: Any) -> bytes:
    return RtpPacket(
        payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=4321, payload=payload, **kw
    ).serialize()


def with_extras(seq: int, ts: int) -> bytes:
    """A packet with a marker, two CSRCs, a one-byte header extension (MID, audio level) and padding."""
    p = RtpPacket(payload_type=111, sequence_number=seq, timestamp=ts, ssrc=4321, payload=b"opus!", marker=1)
    p.csrc = [7, 8]
    p.padding_size = 3
    p.extensions = HeaderExtensions(mid="0", audio_level=(True, 30))
    ext = HeaderExtensionsMap()
    ext.configure(type("Params", (), {"headerExtensions": _extensions()})())
    p.extension_profile, p.extension_value = ext.set(p.extensions)
    return p.serialize(ext)


def _extensions() -> list[Any]:
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters as H

    return [
        H(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        H(id=2, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
    ]


def test_parse_reads_what_aiortc_reads() -> None:
    for raw in (packet(65535, 2**32 - 960), packet(3, 960, b""), with_extras(9, 8640), packet(1, 2, pt=0)):
        got = parse(raw)
        ref = RtpPacket.parse(raw, HeaderExtensionsMap())
        assert got == (ref.payload_type, ref.sequence_number, ref.timestamp, ref.ssrc, ref.payload)
    assert parse(with_extras(9, 8640))[4] == b"opus!"  # CSRCs, extension and padding stepped over


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x6f" + bytes(9),  # shorter than a header
        b"\x40\x6f" + bytes(20),  # version 1
        b"\x82\x6f" + bytes(14),  # two CSRCs announced, one there
        b"\x90\x6f" + bytes(12),  # extension announced, no extension header
        b"\x90\x6f" + bytes(10) + b"\xbe\xde\x00\x02" + bytes(4),  # extension 8 bytes long, 4 there
        b"\xa0\x6f" + bytes(12) + b"\x00",  # padding of 0 bytes
        b"\xa0\x6f" + bytes(10) + b"\x01\x09",  # padding longer than the payload
    ],
)
def test_parse_refuses_what_aiortc_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError):
        RtpPacket.parse(raw, HeaderExtensionsMap())
    with pytest.raises(ValueError):
        parse(raw)


def batched_receiver(kind: str = "audio") -> RTCRtpReceiver:
    """A real receiver as the batched path sets it up, its codecs and decoder worker as ``receive()``
    leaves them (without starting RTCP or the decoding thread)."""
    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    receiver = RTCRtpReceiver(kind, dtls)
    if kind == "audio":
        assert jitter.install(receiver) and handoff.install(receiver)
    codecs = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    codecs[111], codecs[112] = OPUS, RTX
    receiver._RTCRtpReceiver__decoder_thread = threading.Thread(target=lambda: None)  # type: ignore[attr-defined]
    return receiver


def outcome(receiver: RTCRtpReceiver) -> dict[str, Any]:
    private = "_RTCRtpReceiver__"
    q: queue.SimpleQueue[Any] = getattr(receiver, private + "decoder_queue")
    frames = []
    while not q.empty():
        codec, frame = q.get_nowait()
        frames.append((codec.payloadType, frame.data, frame.timestamp))
    stats = {
        ssrc: (s.base_seq, s.max_seq, s.cycles, s.packets_received, s.packets_lost, s.jitter, s._last_arrival)
        for ssrc, s in getattr(receiver, private + "remote_streams").items()
    }
    buffer = getattr(receiver, private + "jitter_buffer")
    return {
        "frames": frames,
        "stats": stats,
        "sources": sorted(getattr(receiver, private + "active_ssrc")),
        "buffer": (buffer.released, buffer.skipped, buffer.late),
    }


async def test_a_packet_sequence_ends_where_aiortc_s_receiver_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # up to the sequence number's wrap; then reordered, repeated and lost (3) packets; an unknown payload
    # type (dropped: 10), an empty payload, a packet with CSRCs, an extension and padding
    stream = [packet(s, 960 * s, bytes([s % 256]) * 5) for s in range(65530, 65536)]
    stream += [packet(s, 960 * (65536 + s), bytes([s]) * 5) for s in (0, 2, 1, 1, 4, 5, 6, 7, 8, 9)]
    stream += [packet(10, 960 * 65546, pt=99), packet(11, 960 * 65547, b""), with_extras(12, 960 * 65548)]
    stream += [packet(s, 960 * (65536 + s)) for s in range(13, 20)]
    # arrivals 20 ms apart, give or take a few ms: aiortc's statistics read them from its clock
    arrivals = [1.8e9 + 0.02 * i + 0.004 * ((i * 7) % 3) for i in range(len(stream))]
    clock_now = [0.0]
    monkeypatch.setattr(rtcrtpreceiver.time, "time", lambda: clock_now[0])
    seen = datetime.datetime.now(datetime.timezone.utc)
    ours, theirs = batched_receiver(), batched_receiver()
    path = AudioPath.of(ours)
    assert path is not None
    for raw, arrival in zip(stream, arrivals, strict=True):
        assert path.handle(*parse(raw), arrival, seen)
        clock_now[0] = arrival
        assert drive(
            theirs._handle_rtp_packet(RtpPacket.parse(raw, HeaderExtensionsMap()), arrival_time_ms=0)
        )
    got, expected = outcome(ours), outcome(theirs)
    assert got == expected
    (stats,) = got["stats"].values()
    assert 0 < stats[5] < 480  # jitter (48 kHz units) from the arrivals given, a few ms
    # 24 sequence numbers arrived: 3 and 10 given up, the second 1 too late, and three frames still
    # held (the buffer lets out one frame per packet in, as aiortc's does)
    assert got["buffer"] == (21, 2, 1) and len(got["frames"]) == 21

    # a retransmission is left to aiortc; a stopped receiver takes nothing
    assert not path.handle(*parse(packet(3, 960 * 65539, b"\x00\x03rtx", pt=112)), 0.0, seen)
    ours._enabled = False
    assert path.handle(*parse(packet(20, 960 * 65556)), 0.0, seen)
    assert outcome(ours)["frames"] == []


async def test_receivers_laid_out_otherwise_keep_aiortc_s_path() -> None:
    assert AudioPath.of(batched_receiver("video")) is None
    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    assert AudioPath.of(RTCRtpReceiver("audio", dtls)) is None  # aiortc's own jitter buffer and queue
    assert AudioPath.of(object()) is None
