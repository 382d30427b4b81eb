"""WebRTC media handled where it arrives: SRTP packets decrypted and routed in the datagram callback.

aioice puts every datagram of an established connection in an ``asyncio.Queue``, and aiortc's DTLS
transport runs a task that takes them one at a time (``RTCDtlsTransport._recv_next``), then
decrypts, parses and routes each SRTP packet through three more coroutines down to the receiver's
jitter buffer. For audio that is a queue put and get, a future, a task step and five coroutine frames
per 20 ms packet, 50 times a second per peer, on the one event loop that serves every peer.

:func:`install` gives one connection's ICE endpoint a ``data_received`` (:class:`InlineReceiver`)
that handles an SRTP or SRTCP datagram right where uvloop delivers it, once DTLS is up and nothing
older waits in the queue: the transport's byte and packet counters, its SRTP session and aiortc's
own handlers (``_handle_rtp_data``, ``_handle_rtcp_data``), driven to completion without a task.
For audio they never suspend; should one suspend (RTCP feedback for video, say), a task finishes
it (:func:`drive`). Everything else goes to aiortc's queue as before: DTLS records, anything before
the handshake is done, and any datagram while older ones are still queued, so the order in which
aiortc sees them is kept. Decryption failures are dropped as aiortc drops them; any other error in
a handler drops that packet and is logged (the first of each kind, then counted), where aiortc's
task would have closed the connection.

Only the batched hand-off (:mod:`samos.monitor.sources.handoff`) installs it: ``"aiortc"`` stays
stock aiortc. Written against aiortc 1.16 and aioice 0.13 (the locked versions); :func:`install`
checks the layout it relies on and keeps aiortc's path (with a warning) where it differs.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator
from typing import Any

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc import clock
from aiortc.rtcdtlstransport import State
from aiortc.rtp import is_rtcp

log = logging.getLogger(__name__)

_HANDSHAKE_DONE = "_RTCDtlsTransport__handshake_done"
_RX_BYTES = "_RTCDtlsTransport__rx_bytes"
_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
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


class InlineReceiver:
    """The ``data_received`` of one ICE connection: SRTP and SRTCP of an established DTLS transport
    handled at once, anything else queued for aiortc (see the module doc). Counters: ``inline``
    (datagrams handled here), ``queued`` (passed to aiortc's queue), ``failed`` (dropped on an error
    other than a decryption failure), ``suspended`` (handlers a task had to finish)."""

    def __init__(self, dtls: Any) -> None:
        self._dtls = dtls
        connection = dtls.transport._connection
        self._queue: asyncio.Queue[Any] = connection._queue
        self._queue_put = connection.data_received  # aioice's own: puts (data, component) in the queue
        self.inline = 0
        self.queued = 0
        self.failed = 0
        self.suspended = 0
        self._errors_seen: set[str] = set()

    def data_received(self, data: bytes, component: int) -> None:
        dtls = self._dtls
        if not data:  # carries nothing (and aiortc's task would fail on it, closing the connection)
            return
        srtp = dtls._rx_srtp
        if not (
            127 < data[0] < 192
            and srtp is not None
            and self._queue.empty()
            and dtls._state is State.CONNECTED  # not once it is stopped: aiortc's task ends then too
            and getattr(dtls, _HANDSHAKE_DONE)
        ):
            self.queued += 1
            self._queue_put(data, component)
            return
        self.inline += 1
        setattr(dtls, _RX_BYTES, getattr(dtls, _RX_BYTES) + len(data))
        setattr(dtls, _RX_PACKETS, getattr(dtls, _RX_PACKETS) + 1)
        arrival_time_ms = clock.current_ms()
        try:
            if is_rtcp(data):
                handler = dtls._handle_rtcp_data(srtp.unprotect_rtcp(data))
            else:
                handler = dtls._handle_rtp_data(srtp.unprotect(data), arrival_time_ms=arrival_time_ms)
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
    protocol.datagram_received = datagram_received  # type: ignore[method-assign]


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
