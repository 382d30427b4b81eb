"""SRTP handled in the datagram callback: real peers, the same audio, aiortc's queue kept for the rest."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from webrtc_peers import FRAME, RATE, ArrayTrack, offer_for, speech_clip

from samos.monitor.source import SourceEnded
from samos.monitor.sources import handoff, srtp_inline
from samos.monitor.sources.webrtc import WebRTCOptions, WebRTCSource, accept_offer

pytestmark = pytest.mark.timeout(60)
OPTIONS = WebRTCOptions(connect_timeout=10.0, inactivity_timeout=1.0, close_timeout=3.0)


@pytest.fixture(autouse=True)
def batched() -> Iterator[None]:
    handoff.use("batched")
    yield
    handoff.use("aiortc")


def inline_of(source: WebRTCSource) -> srtp_inline.InlineReceiver | None:
    """The source's ICE connection's ``data_received`` handler, if it is samos's."""
    connection = source._receiver.transport.transport._connection
    handler = getattr(connection.data_received, "__self__", None)
    return handler if isinstance(handler, srtp_inline.InlineReceiver) else None


def spy_on(inline: srtp_inline.InlineReceiver) -> dict[bytes, list[Any]]:
    """Record what ``inline`` handles, in order: datagram -> [its arrival time, when it was handled,
    how many times]."""
    handled: dict[bytes, list[Any]] = {}
    handle = inline.handle

    def spy(data: bytes, arrival: float, seen: Any = None) -> None:
        record = handled.setdefault(data, [arrival, time.time(), 0])
        record[2] += 1
        handle(data, arrival, seen)

    inline.handle = spy  # type: ignore[method-assign]
    return handled


async def flowing(name: str) -> tuple[Any, WebRTCSource, srtp_inline.InlineReceiver, dict[bytes, list[Any]]]:
    """A real peer sending 2 s of speech to a source ``name``, media flowing: the sender, the source,
    its inline receiver and what that handles from now on (:func:`spy_on`)."""
    sender = await offer_for(ArrayTrack(speech_clip(2.0)))
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", name, OPTIONS)
    inline = inline_of(source)
    assert inline is not None
    await sender.setRemoteDescription(answer)
    await asyncio.wait_for(source.recv(), 10.0)
    return sender, source, inline, spy_on(inline)


async def receive_all(source: WebRTCSource) -> np.ndarray:
    received = []
    while True:
        try:
            received.append((await asyncio.wait_for(source.recv(), 10.0)).samples)
        except SourceEnded:
            return np.concatenate(received)


def aligned_correlation(sent: np.ndarray, got: np.ndarray) -> float:
    """Correlation of ``got`` with ``sent`` after the codec's delay (found on the first second)."""
    a, b = sent[:RATE], got[:RATE]
    xc = np.fft.irfft(np.fft.rfft(b, 2 * RATE) * np.conj(np.fft.rfft(a, 2 * RATE)))
    shift = int(np.argmax(xc))
    shift = shift - 2 * RATE if shift > RATE else shift
    x, y = (got[shift:], sent) if shift >= 0 else (got, sent[-shift:])
    n = min(len(x), len(y))
    return float(np.corrcoef(x[:n], y[:n])[0, 1])


async def test_a_real_peer_s_media_is_handled_inline_and_arrives_whole() -> None:
    audio = speech_clip(1.5)
    sender = await offer_for(ArrayTrack(audio))
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", "inline", OPTIONS)
    inline = inline_of(source)
    assert isinstance(inline, srtp_inline.InlineReceiver)
    await sender.setRemoteDescription(answer)
    got = await receive_all(source)
    assert len(got) >= len(audio) - 10 * FRAME  # frames sent before DTLS is up are lost either way
    assert aligned_correlation(audio, got) > 0.9
    # the DTLS handshake went through aiortc's queue, the media (about 75 packets) did not
    assert inline.inline >= 60 and inline.queued >= 1
    assert inline.failed == 0 and inline.suspended == 0
    # after the first packet taught aiortc's router its SSRC, the rest went to the receiver directly
    assert inline.direct >= inline.inline - 5
    stats = source._receiver.transport._get_stats()  # what the receiver's getStats() reports
    transport = next(s for s in stats.values() if s.type == "transport")
    assert transport.packetsReceived >= inline.inline  # counted as aiortc's task would count them
    (remote,) = source._receiver._RTCRtpReceiver__remote_streams.values()  # its RTCP reports' source
    assert remote.packets_received >= inline.inline - 5 and remote.packets_lost == 0
    assert source._receiver.getSynchronizationSources()  # the sender is an active source

    await source.close()
    await sender.close()
    handled = inline.inline
    inline.data_received(b"\x80" + bytes(40), 1)  # after the transport stopped: not handled here
    assert inline.queued >= 1 and inline.inline == handled


async def test_datagrams_wait_for_their_batch_and_those_of_a_stopped_transport_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sender, source, inline, arrivals = await flowing("batch")
    junk = b"\x80\x6f" + bytes(40)  # does not decrypt: dropped when handled, as aiortc drops it
    before = time.time()
    inline.data_received(junk, 1)
    after = time.time()
    assert junk not in arrivals  # not yet: it waits for the batch of every connection's datagrams
    await asyncio.sleep(3 * srtp_inline.DEFER_SECONDS)
    assert junk in arrivals
    # handled with the time it arrived, not the time its batch went (what RTCP's jitter is measured from)
    arrival, handled_at, _ = arrivals[junk]
    assert before <= arrival <= after and handled_at > arrival

    batch = srtp_inline.DEFER_SECONDS
    monkeypatch.setattr(srtp_inline, "DEFER_SECONDS", 2.0)
    await asyncio.sleep(1.5 * batch)  # the batch open now goes; the next one waits 2 s
    late = b"\x80\x6f" + bytes(41)
    inline.data_received(late, 1)
    counted, stale = inline.inline, inline.stale
    await source.close()  # stops the transport while the datagram waits
    await asyncio.sleep(2.5)
    assert late in arrivals and inline.stale > stale and inline.inline == counted
    await sender.close()


async def test_rtcp_is_handled_as_it_arrives_after_its_connection_s_waiting_media() -> None:
    sender, source, inline, arrivals = await flowing("rtcp")
    await asyncio.sleep(2 * srtp_inline.DEFER_SECONDS)  # what waited before has gone
    arrivals.clear()
    media, report = b"\x80\x6f" + bytes(40), b"\x80\xc8" + bytes(40)  # RTP, then an RTCP sender report
    inline.data_received(media, 1)
    assert not arrivals  # media waits for the batch
    inline.data_received(report, 1)
    # the report at once, and the connection's media that arrived before it first
    handled = list(arrivals)  # in the order handled
    assert handled[-1] == report and media in handled[:-1]
    await asyncio.sleep(2 * srtp_inline.DEFER_SECONDS)
    assert arrivals[media][2] == 1  # handled once: not again with the batch
    await source.close()
    await sender.close()


async def test_a_batch_goes_on_past_a_datagram_whose_handling_fails(caplog: pytest.LogCaptureFixture) -> None:
    class Receiver:  # what a batch needs of an inline receiver: handle(datagram, arrival, seen)
        def __init__(self, fails: bool) -> None:
            self.fails, self.got, self.seen = fails, [], set()

        def handle(self, data: bytes, arrival: float, seen: Any) -> None:
            self.got.append((data, arrival))
            self.seen.add(seen)
            if self.fails:
                raise RuntimeError("bug")

    batch = srtp_inline._Deferred(asyncio.get_running_loop())
    bad, good = Receiver(True), Receiver(False)
    for i in range(3):
        batch.add(bad, bytes([128, i]), 10.0 + i)  # type: ignore[arg-type]
        batch.add(good, bytes([129, i]), 20.0 + i)  # type: ignore[arg-type]
    assert not good.got  # nothing before the batch is due
    with caplog.at_level(logging.ERROR, logger=srtp_inline.__name__):
        await asyncio.sleep(3 * srtp_inline.DEFER_SECONDS)
    assert good.got == [(bytes([129, i]), 20.0 + i) for i in range(3)] and len(bad.got) == 3
    assert len(good.seen | bad.seen) == 1  # one "latest packet" time for the batch
    assert caplog.text.count("handling a received datagram failed") == 3


async def test_stock_aiortc_keeps_its_own_receive_task() -> None:
    handoff.use("aiortc")
    sender = await offer_for(ArrayTrack(speech_clip(0.5)))
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", "stock", OPTIONS)
    assert inline_of(source) is None
    await sender.setRemoteDescription(answer)
    assert (await asyncio.wait_for(source.recv(), 10.0)).frames > 0
    await source.close()
    await sender.close()


async def test_datagrams_behind_queued_ones_wait_their_turn_and_a_bad_packet_is_only_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    audio = speech_clip(2.0)
    sender = await offer_for(ArrayTrack(audio))
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", "order", OPTIONS)
    inline = inline_of(source)
    assert inline is not None
    await sender.setRemoteDescription(answer)
    await asyncio.wait_for(source.recv(), 10.0)  # connected, media flowing inline
    dtls = source._receiver.transport
    queue = dtls.transport._connection._queue

    # an older datagram still queued: the next one goes behind it, not past it
    queue.put_nowait((b"\x80" + bytes(40), 1))
    queued = inline.queued
    inline.data_received(b"\x80" + bytes(40), 1)
    assert inline.queued == queued + 1 and queue.qsize() == 2  # (both fail to decrypt: dropped there)

    # a handler that raises drops its packet, says so once, and the stream goes on
    jitter = source._receiver._RTCRtpReceiver__jitter_buffer
    raised = []
    three = asyncio.Event()

    def failing(packet: object) -> None:
        raised.append(packet)
        if len(raised) == 3:
            three.set()
        raise RuntimeError("handler bug")

    jitter.add = failing
    with caplog.at_level(logging.WARNING, logger=srtp_inline.__name__):
        await asyncio.wait_for(three.wait(), 5.0)
    del jitter.add
    assert inline.failed >= 3
    assert caplog.text.count("handler bug") == 1
    rest = await receive_all(source)
    assert len(rest) > RATE // 2  # the rest of the call still arrives
    await source.close()
    await sender.close()


async def test_drive_finishes_a_handler_now_or_hands_it_to_a_task() -> None:
    done: list[str] = []

    async def at_once() -> None:
        done.append("now")

    assert srtp_inline.drive(at_once())
    assert done == ["now"]

    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()

    async def waits() -> None:
        done.append(f"got {await gate}")
        await asyncio.sleep(0)
        done.append("after")

    assert not srtp_inline.drive(waits())
    assert done == ["now"] and len(srtp_inline._pending) == 1
    gate.set_result(7)
    for _ in range(10):
        await asyncio.sleep(0)
    assert done == ["now", "got 7", "after"]
    assert not srtp_inline._pending

    # an exception thrown into the suspended handler reaches it (as a task would deliver it)
    seen: list[str] = []
    gate2: asyncio.Future[None] = loop.create_future()

    async def cancelled() -> None:
        try:
            await gate2
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    assert not srtp_inline.drive(cancelled())
    (task,) = srtp_inline._pending
    await asyncio.sleep(0)  # the task has taken over the wait
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]

    # cancelled before the task ever ran (a loop shutting down): the handler is closed, not left open
    async def never_resumed() -> None:
        try:
            await loop.create_future()
        finally:
            seen.append("closed")

    assert not srtp_inline.drive(never_resumed())
    (task,) = srtp_inline._pending
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled", "closed"]


def test_a_transport_laid_out_otherwise_keeps_aiortc_s_path(caplog: pytest.LogCaptureFixture) -> None:
    class Elsewhere:  # an aiortc whose DTLS transport has none of the attributes relied on
        transport = None

    with caplog.at_level(logging.WARNING, logger=srtp_inline.__name__):
        assert srtp_inline.install(Elsewhere()) is None
    assert "keeping its receive task" in caplog.text


class Recorder:
    """Stands in for aioice's ``Connection`` behind one socket: records what the socket hands it."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.requests: list[object] = []

    def data_received(self, data: bytes, component: int) -> None:
        self.data.append(data)

    def request_received(self, message: object, addr: tuple, protocol: object) -> None:
        self.requests.append(message)


async def test_sockets_tell_media_from_stun_by_the_first_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    from aioice import Candidate, ice, stun

    parsed: list[bytes] = []
    parse = stun.parse_message

    def counting_parse(data: bytes) -> stun.Message:
        parsed.append(data)
        return parse(data)

    monkeypatch.setattr(ice.stun, "parse_message", counting_parse)
    recorder = Recorder()
    protocol = ice.StunProtocol(recorder)  # type: ignore[arg-type]
    protocol.local_candidate = Candidate("1", 1, "udp", 1, "127.0.0.1", 5000, "host")
    rtp = bytes([0x80, 111]) + (7).to_bytes(2, "big") + bytes(96)
    protocol.datagram_received(rtp, ("127.0.0.1", 6000))
    assert recorder.data == [rtp] and parsed == [rtp]  # aioice: tried as STUN, then passed on
    srtp_inline.demux(protocol)
    protocol.datagram_received(rtp, ("127.0.0.1", 6000))
    assert recorder.data == [rtp, rtp] and parsed == [rtp]  # now passed on without the try
    request = bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))
    protocol.datagram_received(request, ("127.0.0.1", 6000))  # STUN still goes to aioice
    assert len(recorder.requests) == 1 and parsed == [rtp, request]
    protocol.datagram_received(b"", ("127.0.0.1", 6000))  # nothing to demultiplex: aioice's


async def test_every_socket_of_an_accepted_peer_is_demultiplexed() -> None:
    sender = await offer_for(ArrayTrack(speech_clip(0.5)))
    source, answer = await accept_offer(sender.localDescription.sdp, "offer", "demux", OPTIONS)
    protocols = source._receiver.transport.transport._connection._protocols
    assert protocols and all(getattr(p.datagram_received, "demuxed", False) for p in protocols)
    await sender.setRemoteDescription(answer)
    assert (await asyncio.wait_for(source.recv(), 10.0)).frames > 0
    await source.close()
    await sender.close()
