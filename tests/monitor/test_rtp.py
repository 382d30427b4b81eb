"""RTP ingest: packets from a real UDP socket into RtpSource (sample-exact timelines under loss,
reordering, duplicates, DTX, SSRC changes and bad input), and Debian's ffmpeg streaming Opus, PCMU,
PCMA and G.722 through a lossy, reordering relay into a running Monitor whose websocket subscriber
sees the stream scored."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtp_peers import (
    FFMPEG,
    GST_LAUNCH,
    NO_FFMPEG,
    NO_GST,
    RtpSender,
    ffmpeg_rtp,
    gst_rtp,
    l16_payloads,
    lossy,
    start_relay,
    stop,
    write_wav,
)
from test_http import monitor_config, read_until, scores, ws_url
from webrtc_peers import speech_clip

from samos.monitor.app import Monitor
from samos.monitor.source import SourceEnded, SourceError
from samos.monitor.sources.rtp import RtpOptions, RtpSource, RtpSpec

pytestmark = pytest.mark.timeout(60)
RATE = 16_000
PACKET = 320  # 20 ms of L16 at 16 kHz


def tone16(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


async def collect(source: RtpSource, timeout: float = 10.0) -> list[Any]:
    """Every chunk until the source ends."""
    chunks = []
    deadline = time.monotonic() + timeout
    with pytest.raises(SourceEnded):
        while True:
            chunks.append(await asyncio.wait_for(source.recv(), deadline - time.monotonic()))
    return chunks


async def open_l16(**options: Any) -> RtpSource:
    spec = RtpSpec("127.0.0.1", 0, "call", codec="l16", rate=RATE, idle=0.4)
    return await RtpSource.open(spec, RtpOptions(**options) if options else None)


def timeline(chunks: list[Any]) -> np.ndarray:
    """The received audio with lost samples put back as NaN (so positions can be compared)."""
    parts = []
    for c in chunks:
        parts.append(np.full(c.dropped, np.nan, np.float32))
        parts.append(c.samples)
    return np.concatenate(parts)


def quantised(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32768


# ------------------------------------------------------------------------------------- spec parsing
def test_spec_parsing_and_errors() -> None:
    s = RtpSpec.parse("desk=0.0.0.0:5004,codec=PCMU,idle=3")
    assert (s.name, s.host, s.port, s.codec, s.idle, s.audio_rate, s.clock) == (
        "desk",
        "0.0.0.0",
        5004,
        "pcmu",
        3.0,
        8000,
        8000,
    )
    assert RtpSpec.parse("5006").host == "127.0.0.1" and RtpSpec.parse("5006").codec == "opus"
    g722 = RtpSpec.parse("[::1]:5008,codec=g722")
    assert (g722.host, g722.audio_rate, g722.clock) == ("::1", 16_000, 8_000)
    assert RtpSpec.parse("x=1.2.3.4:9,codec=l16,rate=48000,channels=2,pt=100").channels == 2
    for bad, message in [
        ("127.0.0.1:5004,codec=amr", "not supported"),
        ("127.0.0.1:5004,codec=l16", "needs rate"),
        ("127.0.0.1:5004,codec=pcmu,rate=16000", "runs at 8000"),
        ("127.0.0.1:5004,color=red", "unknown option"),
        ("127.0.0.1:port", "expected"),
        ("127.0.0.1:5004,pt=300", "0-127"),
        ("127.0.0.1:99999", "out of range"),
        ("127.0.0.1:5004,codec=opus,channels=2", "only l16"),
        ("127.0.0.1:5004,rate=abc", "not valid"),
    ]:
        with pytest.raises(SourceError, match=message):
            RtpSpec.parse(bad)


async def test_a_port_in_use_is_a_clear_error() -> None:
    first = await RtpSource.open(RtpSpec("127.0.0.1", 0))
    try:
        with pytest.raises(SourceError, match="cannot listen"):
            await RtpSource.open(RtpSpec("127.0.0.1", first.local_address[1]))
    finally:
        await first.close()


# ------------------------------------------------------------------------------ exact timelines (L16)
async def test_loss_reordering_and_duplicates_keep_the_timeline_exact() -> None:
    source = await open_l16()
    sender = RtpSender(source.local_address[1], seq0=65_500, ts0=2**32 - 3 * PACKET)  # both wrap
    audio = tone16(1.0)
    payloads = l16_payloads(audio, PACKET)
    order = list(range(len(payloads)))
    order[10], order[11] = order[11], order[10]  # reordered
    order[30], order[32] = order[32], order[30]  # reordered further
    lost = {20, 21, 40}
    try:
        for i in order:
            if i in lost:
                continue
            sender.send(sender.packet(i, payloads[i], PACKET))
            if i == 15:
                sender.send(sender.packet(i, payloads[i], PACKET))  # duplicate
            await asyncio.sleep(0.001)
        chunks = await collect(source)
    finally:
        sender.close()
    got = timeline(chunks)
    want = quantised(audio)
    assert len(got) == len(want)
    missing = np.isnan(got)
    expected_missing = np.zeros(len(want), bool)
    for i in lost:
        expected_missing[i * PACKET : (i + 1) * PACKET] = True
    assert np.array_equal(missing, expected_missing)
    assert np.array_equal(got[~missing], want[~missing])
    st = source.stats
    assert (st.lost_packets, st.duplicate, st.lost_samples, st.silence_samples) == (3, 1, 3 * PACKET, 0)
    assert st.loss_rate == pytest.approx(3 / 50)
    assert st.end_reason is not None and "no RTP" in st.end_reason


async def test_a_timestamp_gap_without_lost_packets_is_silence_not_loss() -> None:
    source = await open_l16()
    sender = RtpSender(source.local_address[1])
    payloads = l16_payloads(tone16(0.4), PACKET)
    try:
        for i, p in enumerate(payloads):
            ts_index = i if i < 10 else i + 5  # DTX: 100 ms without packets, sequence unbroken
            sender.send(_pkt(sender, i, ts_index, p))
            await asyncio.sleep(0.001)
        chunks = await collect(source)
    finally:
        sender.close()
    got = timeline(chunks)
    assert not np.isnan(got).any()  # nothing lost
    assert len(got) == (len(payloads) + 5) * PACKET
    assert np.all(got[10 * PACKET : 15 * PACKET] == 0)
    assert source.stats.silence_samples == 5 * PACKET and source.stats.lost_samples == 0


def _pkt(sender: RtpSender, seq_index: int, ts_index: int, payload: bytes, **over: int) -> bytes:
    from aiortc.rtp import RtpPacket

    return RtpPacket(
        payload_type=over.get("pt", sender.pt),
        sequence_number=(sender.seq0 + seq_index) & 0xFFFF,
        timestamp=(sender.ts0 + ts_index * PACKET) & 0xFFFFFFFF,
        ssrc=over.get("ssrc", sender.ssrc),
        payload=payload,
    ).serialize()


async def test_a_new_ssrc_takes_over_and_continues_the_stream() -> None:
    source = await open_l16()
    port = source.local_address[1]
    first = RtpSender(port, ssrc=111, seq0=100, ts0=5_000)
    second = RtpSender(port, ssrc=222, seq0=40_000, ts0=9_999_999)  # another sender, other numbering
    audio = tone16(0.8)
    payloads = l16_payloads(audio, PACKET)
    try:
        for i in range(20):
            first.send(first.packet(i, payloads[i], PACKET))
            await asyncio.sleep(0.001)
        await asyncio.sleep(2.1)  # the first sender went quiet: another address may take over
        for i in range(20, len(payloads)):
            second.send(second.packet(i - 20, payloads[i], PACKET))
            await asyncio.sleep(0.001)
        chunks = await collect(source)
    finally:
        first.close()
        second.close()
    got = timeline(chunks)
    assert not np.isnan(got).any()
    assert np.array_equal(got, quantised(audio))  # nothing lost, nothing doubled, in order
    assert source.stats.ssrc_changes == 1 and source.stats.ssrc == 222


async def test_bad_input_is_counted_and_dropped_while_the_stream_stays_exact() -> None:
    source = await open_l16(max_packet_rate=200.0)
    port = source.local_address[1]
    sender = RtpSender(port)
    intruder = RtpSender(port, ssrc=999)
    audio = tone16(0.6)
    payloads = l16_payloads(audio, PACKET)
    try:
        for i, p in enumerate(payloads):
            sender.send(sender.packet(i, p, PACKET))
            if i == 3:
                sender.send(b"\x00" * 40)  # not RTP (version 0)
                sender.send(b"\x80")  # too short
                sender.send(bytes([0x80, 200]) + b"\x00" * 26)  # an RTCP sender report
                sender.send(sender.packet(i, b"\x00" * 9000, PACKET))  # oversized
                sender.send(sender.packet(i, p, PACKET, pt=0))  # wrong payload type
                sender.send(sender.packet(500 + i, p, PACKET, ssrc=77))  # a stray SSRC
                sender.send(_pkt(sender, i + 1, i + 1, b"\x01\x02\x03"))  # odd L16 payload: undecodable
            if i == 5:
                for _ in range(50):  # another address floods the port
                    intruder.send(intruder.packet(i, p, PACKET))
            await asyncio.sleep(0.002)
        chunks = await collect(source)
    finally:
        sender.close()
        intruder.close()
    st = source.stats
    assert (st.malformed, st.rtcp, st.oversized, st.wrong_pt, st.other_ssrc) == (2, 1, 1, 1, 1)
    assert st.other_address == 50
    assert st.duplicate == 1  # the good packet 4 after the undecodable one with its sequence number
    got = timeline(chunks)
    want = quantised(audio)
    # the undecodable packet took the place of packet 4: exactly its 20 ms is lost, the rest is exact
    missing = np.isnan(got)
    assert missing.sum() == PACKET and missing[4 * PACKET : 5 * PACKET].all()
    assert np.array_equal(got[~missing], want[~missing])
    assert st.decode_errors == 1


async def test_a_flood_from_the_sender_is_limited() -> None:
    source = await open_l16(max_packet_rate=100.0)
    sender = RtpSender(source.local_address[1])
    payloads = l16_payloads(tone16(2.0), PACKET)
    try:
        for i, p in enumerate(payloads):  # 100 packets at once: 2 s of audio in a few ms
            sender.send(sender.packet(i, p, PACKET))
        chunks = await collect(source)
    finally:
        sender.close()
    st = source.stats
    assert st.flood > 0 and st.packets + st.flood <= len(payloads)  # the kernel may drop some too
    assert st.packets <= 60  # the bucket holds half a second of packets
    assert sum(c.frames for c in chunks) == st.packets * PACKET


async def test_close_ends_recv() -> None:
    source = await RtpSource.open(RtpSpec("127.0.0.1", 0))
    waiter = asyncio.create_task(source.recv(), name="test:recv")
    await asyncio.sleep(0.05)
    await source.close()
    with pytest.raises(SourceEnded):
        await asyncio.wait_for(waiter, 2.0)
    await source.close()  # idempotent


# ------------------------------------------------------------------- ffmpeg -> relay -> monitor -> ws
@pytest.mark.skipif(FFMPEG is None, reason=NO_FFMPEG)
@pytest.mark.parametrize(
    ("codec", "rate"), [("opus", 48_000), ("pcmu", 8_000), ("pcma", 8_000), ("g722", 16_000)]
)
async def test_ffmpeg_rtp_through_a_lossy_relay_is_scored(
    scorer: Any, tmp_path: Path, codec: str, rate: int
) -> None:
    wav = write_wav(tmp_path / "speech.wav", speech_clip(3.0))
    cfg = monitor_config()
    monitor = Monitor(cfg, scorer)
    await monitor.start()
    source = await RtpSource.open(RtpSpec("127.0.0.1", 0, "pbx", codec=codec, idle=1.0))
    relay = await start_relay(source.local_address, lossy(drop={30, 31, 60}, hold={10, 45, 80}))
    proc = None
    try:
        name = await monitor.add_source(source)
        proc = ffmpeg_rtp(wav, relay.port, codec)
        messages = await read_until(
            ws_url(monitor, name), lambda ms: any(m["type"] == "stream_end" for m in ms), timeout=30
        )
    finally:
        if proc is not None:
            stop(proc)
        assert relay.transport is not None
        relay.transport.close()
        await monitor.stop()
    start = next(m for m in messages if m["type"] == "stream_start")
    assert (start["kind"], start["rate"]) == ("rtp", rate)
    got = scores(messages, name)
    ok = [m for m in got if m["status"] == "ok"]
    assert ok and all(1.0 <= m["mos"] <= 5.0 for m in ok), [m["status"] for m in got]
    st = source.stats
    assert len(relay.dropped) == 3 and relay.swapped == 3
    assert st.lost_packets == 3 and st.late == 0 and st.decode_errors == 0
    lost_seconds = sum(m["diagnostics"]["dropped_seconds"] for m in got)
    assert lost_seconds == pytest.approx(0.06, abs=0.002)  # three 20 ms packets
    assert st.lost_samples == 3 * rate // 50


# ---------------------------------------------------------------------------------- the monitor CLI
def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(FFMPEG is None, reason=NO_FFMPEG)
def test_monitor_cli_rtp_recipe(tmp_path: Path, model_path: Path) -> None:
    """docs/INGEST.md's ffmpeg recipe: ``monitor --rtp NAME=HOST:PORT,codec=..,idle=S`` scores the call
    and exits by itself once the sender has been quiet for ``idle`` seconds."""
    import json
    import sys

    wav = write_wav(tmp_path / "speech.wav", speech_clip(3.0))
    port = free_udp_port()
    log = tmp_path / "scores.jsonl"
    monitor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "samos.monitor.cli",
            "--rtp",
            f"pbx=127.0.0.1:{port},codec=pcmu,idle=1.5",
            "--no-ws",
            "--model",
            str(model_path),
            "--window",
            "1",
            "--hop",
            "0.5",
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sender = None
    try:
        assert monitor.stdout is not None
        while "stream pbx" not in (line := monitor.stdout.readline()):
            assert line, monitor.stderr.read() if monitor.stderr else "monitor exited"
        assert "(rtp, 8000 Hz)" in line
        sender = ffmpeg_rtp(wav, port, "pcmu")
        assert sender.wait(30) == 0
        assert monitor.wait(30) == 0
    finally:
        if sender is not None:
            stop(sender)
        stop(monitor)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    ok = [m for m in lines if m["type"] == "score" and m["stream"] == "pbx" and m["status"] == "ok"]
    assert ok and all(1.0 <= m["mos"] <= 5.0 for m in ok)


# ------------------------------------------------------------------------------------------ SDP files
JANUS_SDP = """v=0
o=- 0 0 IN IP4 127.0.0.1
s=Janus RTP forwarder
c=IN IP4 127.0.0.1
t=0 0
m=audio 5002 RTP/AVP 111 101
a=rtpmap:111 opus/48000/2
a=fmtp:111 useinbandfec=1
a=rtpmap:101 telephone-event/48000
"""


def test_sdp_files_give_the_address_and_codec(tmp_path: Path) -> None:
    sdp = tmp_path / "janus.sdp"
    sdp.write_text(JANUS_SDP)
    s = RtpSpec.parse(f"room1={sdp},idle=2")
    assert (s.name, s.host, s.port, s.codec, s.pt, s.idle) == ("room1", "127.0.0.1", 5002, "opus", 111, 2.0)
    pbx = tmp_path / "pbx.sdp"
    pbx.write_text("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 8 0\r\n")
    assert (RtpSpec.parse(str(pbx)).codec, RtpSpec.parse(str(pbx)).pt, RtpSpec.parse(str(pbx)).host) == (
        "pcma",
        8,
        "0.0.0.0",
    )
    l16 = tmp_path / "l16.sdp"
    l16.write_text("v=0\nm=audio 4002 RTP/AVP 96\na=rtpmap:96 L16/16000/2\n")
    s = RtpSpec.parse(str(l16))
    assert (s.codec, s.rate, s.channels, s.pt) == ("l16", 16_000, 2, 96)
    assert RtpSpec.parse(f"{sdp},pt=100").pt == 100  # the command line overrides the SDP
    bad = tmp_path / "bad.sdp"
    bad.write_text("v=0\nm=audio 4004 RTP/AVP 18\na=rtpmap:18 G729/8000\n")
    with pytest.raises(SourceError, match="no payload type this monitor decodes"):
        RtpSpec.parse(str(bad))
    bad.write_text("v=0\nm=video 4006 RTP/AVP 96\n")
    with pytest.raises(SourceError, match="no audio stream"):
        RtpSpec.parse(str(bad))
    with pytest.raises(SourceError, match="cannot read"):
        RtpSpec.parse(str(tmp_path / "missing.sdp"))


@pytest.mark.skipif(FFMPEG is None, reason=NO_FFMPEG)
def test_the_sdp_ffmpeg_writes_is_understood(tmp_path: Path) -> None:

    wav = write_wav(tmp_path / "s.wav", speech_clip(0.2))
    sdp = tmp_path / "ffmpeg.sdp"
    assert FFMPEG is not None
    r = subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(wav),
            "-c:a",
            "libopus",
            "-f",
            "rtp",
            "-sdp_file",
            str(sdp),
            "rtp://127.0.0.1:5999",
        ],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    s = RtpSpec.parse(f"call={sdp}")
    assert (s.host, s.port, s.codec) == ("127.0.0.1", 5999, "opus") and s.pt is not None and s.pt >= 96


# ------------------------------------------------------------------ the recipes of docs/INGEST.md
async def score_rtp(scorer: Any, spec: RtpSpec, send: Any) -> tuple[list[dict], RtpSource]:
    """A Monitor with one RtpSource for ``spec``; ``send(port)`` starts the sender (a Popen, or None);
    returns the stream's messages up to its stream_end, and the source."""
    monitor = Monitor(monitor_config(), scorer)
    await monitor.start()
    source = await RtpSource.open(spec)
    proc = None
    try:
        name = await monitor.add_source(source)
        proc = await send(source.local_address[1])
        messages = await read_until(
            ws_url(monitor, name), lambda ms: any(m["type"] == "stream_end" for m in ms), timeout=30
        )
    finally:
        if proc is not None:
            stop(proc)
        await monitor.stop()
    return messages, source


class TelephoneEvents:
    """A relay rewrite: every 25th packet, an RFC 4733 telephone-event (digit 5, 4-byte payload, PT 101)
    goes first in the same SSRC and sequence space (the audio's sequence numbers move up by one per
    event), as a WebRTC publisher's DTMF reaches Janus' forwarder."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, index: int, datagram: bytes) -> list[bytes]:
        from aiortc.rtp import RtpPacket

        rtp = RtpPacket.parse(datagram)
        out = []
        if index % 25 == 5:
            event = RtpPacket(
                101,
                0,
                (rtp.sequence_number + self.sent) & 0xFFFF,
                rtp.timestamp,
                rtp.ssrc,
                bytes([5, 0x0A, 0x00, 0xA0]),
            )
            out.append(event.serialize())
            self.sent += 1
        rtp.sequence_number = (rtp.sequence_number + self.sent) & 0xFFFF
        return [*out, rtp.serialize()]


@pytest.mark.skipif(FFMPEG is None, reason=NO_FFMPEG)
async def test_janus_recipe_opus_pt_111_with_telephone_events(scorer: Any, tmp_path: Path) -> None:
    """Janus forwards the publisher's Opus with its payload type (111), DTMF (telephone-event, 4-byte
    payloads, PT 101) in between: the monitor takes 111 and drops the events."""
    wav = write_wav(tmp_path / "speech.wav", speech_clip(3.0))
    relays = []
    events = TelephoneEvents()

    async def send(port: int) -> Any:
        relay = await start_relay(("127.0.0.1", port), lossy(), rewrite=events)
        relays.append(relay)
        return ffmpeg_rtp(wav, relay.port, "opus", "-payload_type", "111")

    try:
        messages, source = await score_rtp(
            scorer, RtpSpec.parse("room1234=127.0.0.1:0,codec=opus,idle=1"), send
        )
    finally:
        for r in relays:
            assert r.transport is not None
            r.transport.close()
    assert source.stats.payload_type == 111 and source.stats.wrong_pt == events.sent >= 5
    assert source.stats.lost_packets == 0 and source.stats.lost_samples == 0  # the events are not loss
    assert [m for m in scores(messages, "room1234") if m["status"] == "ok"]


@pytest.mark.skipif(FFMPEG is None, reason=NO_FFMPEG)
async def test_mediasoup_recipe_opus_with_rtcp_on_the_same_port(scorer: Any, tmp_path: Path) -> None:
    """A PlainTransport with rtcpMux sends RTCP to the RTP port: counted and ignored."""
    wav = write_wav(tmp_path / "speech.wav", speech_clip(3.0))

    async def send(port: int) -> Any:
        return ffmpeg_rtp(wav, port, "opus", "-payload_type", "100", rtcp_mux=True)

    messages, source = await score_rtp(
        scorer, RtpSpec.parse("sfu=127.0.0.1:0,codec=opus,pt=100,idle=1"), send
    )
    assert source.stats.rtcp >= 1 and source.stats.malformed == 0 and source.stats.wrong_pt == 0
    assert [m for m in scores(messages, "sfu") if m["status"] == "ok"]


@pytest.mark.skipif(GST_LAUNCH is None, reason=NO_GST)
async def test_gstreamer_rtp_recipe(scorer: Any, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "speech.wav", speech_clip(3.0))

    async def send(port: int) -> Any:
        return gst_rtp(wav, port, pt=111)

    messages, source = await score_rtp(scorer, RtpSpec.parse("gst=127.0.0.1:0,codec=opus,idle=1"), send)
    assert source.stats.packets >= 140 and source.stats.lost_packets == 0
    assert [m for m in scores(messages, "gst") if m["status"] == "ok"]


async def test_a_reader_that_falls_behind_loses_the_oldest_audio_counted_in_place() -> None:
    source = await open_l16(buffer_seconds=0.5, max_packet_rate=10_000.0)  # 25 packets wait at most
    sender = RtpSender(source.local_address[1])
    audio = tone16(1.0)
    try:
        for i, p in enumerate(l16_payloads(audio, PACKET)):  # 50 packets while nobody reads
            sender.send(sender.packet(i, p, PACKET))
            await asyncio.sleep(0.001)
        chunks = await collect(source)
    finally:
        sender.close()
    st = source.stats
    assert st.overflow == 25 and st.lost_packets == 25 and st.lost_samples == 25 * PACKET
    got = timeline(chunks)
    assert len(got) == len(audio) and np.isnan(got[: 25 * PACKET]).all()
    assert np.array_equal(got[25 * PACKET :], quantised(audio)[25 * PACKET :])
