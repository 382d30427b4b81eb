"""WebRTC media handled where it arrives: SRTP packets decrypted and routed in the datagram callback.

aioice puts every datagram of an established connection in an ``asyncio.Queue``, and aiortc's DTLS
transport runs a task that takes them one at a time (``RTCDtlsTransport._recv_next``), then
decrypts, parses and routes each SRTP packet through three more coroutines down to the receiver's
jitter buffer. For audio that is a queue put and get, a future, a task step and five coroutine frames
per 20 ms packet, 50 times a second per peer, on the one event loop that serves every peer.

:func:`install` gives one connection's ICE endpoint a ``data_received`` (:class:`InlineReceiver`)
that takes an SRTP or SRTCP datagram where uvloop delivers it, once DTLS is up and nothing older
waits in the queue, and handles it, an SRTP packet within :data:`DEFER_SECONDS` together with every
other connection's (with the time it arrived, which the receiver's statistics read), an SRTCP one at
once (after its connection's media that waits): the transport's byte and packet counters, its SRTP
session, then, for an RTP packet
whose SSRC aiortc's router already maps to an audio receiver,
:class:`~samos.monitor.sources.audio_path.AudioPath` (what aiortc's receiver does with it, in one
plain call), else aiortc's own handlers (``_handle_rtp_data``, ``_handle_rtcp_data``), driven to
completion without a task. For audio they never suspend; should one suspend (RTCP feedback for
video, say), a task finishes it (:func:`drive`). A datagram that waited while the transport stopped
is dropped, as aiortc drops what is left in its queue. Everything else goes to aiortc's queue as
before: DTLS records, anything before the handshake is done, and any datagram while older ones are
still queued, so the order in which aiortc sees them is kept. Decryption failures are dropped as
aiortc drops them; any other error in a handler drops that packet and is logged (the first of each
kind, then counted), where aiortc's task would have closed the connection.

Only the batched hand-off (:mod:`samos.monitor.sources.handoff`) installs it: ``"aiortc"`` stays
stock aiortc. Written against aiortc 1.16 and aioice 0.13 (the locked versions); :func:`install`
checks the layout it relies on and keeps aiortc's path (with a warning) where it differs.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
import types
import weakref
from collections.abc import Coroutine, Generator
from typing import Any

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc import clock
from aiortc.rtcdtlstransport import State
from aiortc.rtp import is_rtcp

from samos.monitor.sources import handoff
from samos.monitor.sources.audio_path import AudioPath, parse

log = logging.getLogger(__name__)

_HANDSHAKE_DONE = "_RTCDtlsTransport__handshake_done"
_RX_BYTES = "_RTCDtlsTransport__rx_bytes"
_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
NTP_OFFSET = (datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) - clock.NTP_EPOCH).total_seconds()
"""Seconds from the NTP epoch (1900, aiortc's ``clock``) to the Unix epoch (``time.time()``)."""
_pending: set[asyncio.Future[Any]] = set()  # tasks finishing a suspended handler: kept alive here


@types.coroutine
def _finish(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """The rest of ``coro``, which suspended on ``waiting_on``, as a task runs it: each future it
    waits on is passed up to the task, each result (or exception) passed back down."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # noqa: BLE001 - cancellation and errors go to the coroutine
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            waiting_on = coro.send(value)
        except StopIteration as stop:
            return stop.value


def drive(coro: Coroutine[Any, Any, Any]) -> bool:
    """Run ``coro`` now, in the caller, up to its end; True when it finished there. Where it suspends,
    a task finishes it (False): its result or exception is the task's (the loop logs an exception
    nobody retrieved), and cancelling the task cancels it (or closes it, if the task never ran)."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return True
    task = asyncio.ensure_future(_finish(coro, waiting_on))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    task.add_done_callback(lambda _: coro.close())  # cancelled before its first step: close it too
    return False


def compatible(dtls: Any) -> bool:
    """True when ``dtls`` (an ``RTCDtlsTransport``) and its ICE connection are laid out as this module
    expects."""
    connection = getattr(getattr(dtls, "transport", None), "_connection", None)
    return (
        isinstance(getattr(connection, "_queue", None), asyncio.Queue)
        and isinstance(getattr(connection, "_protocols", None), list)
        and callable(getattr(connection, "data_received", None))
        and all(hasattr(dtls, a) for a in (_HANDSHAKE_DONE, _RX_BYTES, _RX_PACKETS, "_rx_srtp", "_state"))
        and all(callable(getattr(dtls, a, None)) for a in ("_handle_rtp_data", "_handle_rtcp_data"))
    )


DEFER_SECONDS = 0.1
"""Media datagrams wait at most this long (s) to be handled together with those of every other
connection of the loop: the same Python code and objects run back to back, about 40% cheaper per
packet than one at a time between the loop's other work (a per-function probe of ``samos bench
soak``: 59 -> 35 us of loop CPU a packet; docs/RELIABILITY.md). Each batch then wakes the decoding
thread (:func:`samos.monitor.sources.handoff.wake`), which would otherwise take the packets at its
next poll (every :data:`samos.monitor.sources.handoff.POLL_SECONDS`, as long): a packet waits for one
of the two. 100 ms, the chunk a WebRTC source hands its reader (``WebRTCOptions.batch_seconds``):
each batch of audio then makes one chunk, where 50 ms batches woke the loop, the decoding thread and
the source twice for it (about 10% more CPU in the soak, docs/RELIABILITY.md). The monitor's
``http.webrtc_batch_seconds`` sets it (:func:`samos.monitor.sources.handoff.use`)."""


class _Deferred:
    """The media datagrams of one event loop's inline receivers, handled together every
    :data:`DEFER_SECONDS`, each connection's in arrival order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: dict[InlineReceiver, list[tuple[bytes, float]]] = {}
        self._handle: asyncio.TimerHandle | None = None

    def add(self, receiver: InlineReceiver, data: bytes, arrival: float) -> None:
        """Queue ``data`` for ``receiver``; ``arrival``: when it arrived (``time.time()`` s)."""
        items = self._pending.get(receiver)
        if items is None:
            items = self._pending[receiver] = []
        items.append((data, arrival))
        if self._handle is None:
            self._handle = self._loop.call_later(DEFER_SECONDS, self._flush)

    def take(self, receiver: InlineReceiver) -> list[tuple[bytes, float]]:
        """What waits for ``receiver``, in arrival order, taken out of the batch."""
        return self._pending.pop(receiver, [])

    def _flush(self) -> None:
        pending, self._pending, self._handle = self._pending, {}, None
        seen = clock.current_datetime()  # "latest packet" of each source heard: handled now, as aiortc's
        for receiver, items in pending.items():
            run(receiver, items, seen)
        handoff.wake()  # the decoding thread takes the batch's packets now, not at its next poll


def run(receiver: InlineReceiver, items: list[tuple[bytes, float]], seen: datetime.datetime) -> None:
    """Handle ``receiver``'s datagrams ``(data, arrival)`` in order; a bug for one of them is logged and
    the rest are still handled."""
    for data, arrival in items:
        try:
            receiver.handle(data, arrival, seen)
        except Exception:  # a bug for one datagram must not drop the rest of every connection's
            log.exception("handling a received datagram failed")


_deferred: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deferred] = weakref.WeakKeyDictionary()


class InlineReceiver:
    """The ``data_received`` of one ICE connection: SRTP and SRTCP of an established DTLS transport
    handled here (SRTP within :data:`DEFER_SECONDS`, SRTCP at once), anything else queued for aiortc
    (see the module doc). Build it on the connection's event loop. Counters: ``inline`` (datagrams
    handled here), ``direct`` (of those, RTP packets that went straight to their receiver's
    :class:`~samos.monitor.sources.audio_path.AudioPath`), ``queued`` (passed to aiortc's queue),
    ``failed`` (dropped on an error other than a decryption failure), ``suspended`` (handlers a task
    had to finish), ``stale`` (waited while the transport stopped: dropped, as aiortc's queue is)."""

    def __init__(self, dtls: Any) -> None:
        self._dtls = dtls
        connection = dtls.transport._connection
        self._queue: asyncio.Queue[Any] = connection._queue
        self._queue_put = connection.data_received  # aioice's own: puts (data, component) in the queue
        loop = asyncio.get_running_loop()
        self._deferred = _deferred.get(loop) or _deferred.setdefault(loop, _Deferred(loop))
        self._router = getattr(dtls, "_rtp_router", None)
        self._paths: dict[Any, AudioPath | None] = {}  # receiver -> its path (None: aiortc's)
        self.inline = 0
        self.direct = 0
        self.queued = 0
        self.failed = 0
        self.suspended = 0
        self.stale = 0
        self._errors_seen: set[str] = set()

    def data_received(self, data: bytes, component: int) -> None:
        dtls = self._dtls
        if not data:  # carries nothing (and aiortc's task would fail on it, closing the connection)
            return
        if not (
            127 < data[0] < 192
            and dtls._rx_srtp is not None
            and self._queue.empty()
            and dtls._state is State.CONNECTED  # not once it is stopped: aiortc's task ends then too
            and getattr(dtls, _HANDSHAKE_DONE)
        ):
            self.queued += 1
            self._queue_put(data, component)
            return
        if not is_rtcp(data):
            self._deferred.add(self, data, time.time())
            return
        # RTCP is handled as it arrives, after this connection's media that arrived before it: aiortc
        # notes when a sender report came (time.time() as it handles it), and the sender takes the delay
        # since then, which the next receiver report carries, out of its round-trip time
        arrival, seen = time.time(), clock.current_datetime()
        run(self, self._deferred.take(self) + [(data, arrival)], seen)

    def handle(self, data: bytes, arrival: float, seen: datetime.datetime | None = None) -> None:
        """Decrypt and handle one SRTP or SRTCP datagram now (one :meth:`data_received` deferred), which
        arrived at ``arrival`` (``time.time()`` s); ``seen``: the time of handling its batch (default:
        now)."""
        dtls = self._dtls
        srtp = dtls._rx_srtp
        if srtp is None or dtls._state is not State.CONNECTED:
            self.stale += 1
            return
        self.inline += 1
        try:
            setattr(dtls, _RX_BYTES, getattr(dtls, _RX_BYTES) + len(data))
            setattr(dtls, _RX_PACKETS, getattr(dtls, _RX_PACKETS) + 1)
            if is_rtcp(data):
                handler = dtls._handle_rtcp_data(srtp.unprotect_rtcp(data))
            else:
                plain = srtp.unprotect(data)
                if self._direct(plain, arrival, seen or clock.current_datetime()):
                    return
                # (aiortc reads the arrival time only to estimate video bandwidth)
                handler = dtls._handle_rtp_data(plain, arrival_time_ms=round(1000 * (arrival + NTP_OFFSET)))
            if not drive(handler):
                self.suspended += 1
        except pylibsrtp.Error as exc:  # as aiortc: a packet that does not decrypt is dropped
            log.debug("SRTP unprotect failed: %s", exc)
        except Exception as exc:  # noqa: BLE001 - one bad packet must not stop the stream
            self.failed += 1
            kind = type(exc).__name__
            if kind not in self._errors_seen:
                self._errors_seen.add(kind)
                log.warning("dropped a received RTP/RTCP packet: %s: %s (further ones counted)", kind, exc)

    def _direct(self, plain: bytes, arrival: float, seen: datetime.datetime) -> bool:
        """Hand a decrypted RTP packet straight to its receiver's :class:`AudioPath`, when the router
        already maps its SSRC and payload type to an audio receiver that has one; False leaves it to
        aiortc (which also learns new SSRCs)."""
        router = self._router
        if router is None:
            return False
        try:
            header = parse(plain)
        except ValueError:
            return False  # aiortc's parse refuses it too, and logs that
        receiver = router.ssrc_table.get(header[3])
        if receiver is None or receiver not in router.payload_type_table.get(header[0], ()):
            return False
        path = self._paths.get(receiver)
        if path is None:
            if receiver in self._paths:
                return False  # a receiver AudioPath does not handle: aiortc's path
            path = self._paths[receiver] = AudioPath.of(receiver)
            if path is None:
                return False
        if not path.handle(*header, arrival, seen):
            return False
        self.direct += 1
        return True


def demux(protocol: StunProtocol) -> None:
    """Give one of aioice's sockets RFC 7983's demultiplexing: a datagram whose first byte is 128-191
    (RTP or RTCP) goes straight to the connection's ``data_received``; anything else to aioice, which
    tries every datagram as STUN first and passes on what fails to parse: a parse and an exception per
    media packet."""
    stun_path = protocol.datagram_received

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if data and 127 < data[0] < 192:
            protocol.receiver.data_received(data, protocol.local_candidate.component)
        else:
            stun_path(data, addr)

    datagram_received.demuxed = True  # type: ignore[attr-defined]
    protocol.datagram_received = datagram_received  # type: ignore[method-assign,assignment]


def install(dtls: Any) -> InlineReceiver | None:
    """Handle ``dtls``'s received SRTP inline from now on (before or after it connects), and demultiplex
    its ICE connection's sockets gathered so far (call it after the local description is set: aiortc
    gathers then); returns the handler, or None (aiortc's path kept, with a warning) where the layout
    is not the expected one."""
    if not compatible(dtls):
        log.warning("aiortc's DTLS transport is not laid out as samos expects: keeping its receive task")
        return None
    connection = dtls.transport._connection
    for protocol in connection._protocols:
        if isinstance(protocol, StunProtocol) and not getattr(protocol.datagram_received, "demuxed", False):
            demux(protocol)
    current = connection.data_received
    if isinstance(getattr(current, "__self__", None), InlineReceiver):
        return current.__self__
    receiver = InlineReceiver(dtls)
    connection.data_received = receiver.data_received
    return receiver
