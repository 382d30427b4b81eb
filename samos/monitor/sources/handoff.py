"""aiortc's hand-off of decoded audio to the event loop, made cheap (a process-wide choice).

aiortc decodes each received track in a thread of its own (``decoder_worker`` in
``aiortc.rtcrtpreceiver``) and hands every decoded 20 ms frame back to the event loop with
``asyncio.run_coroutine_threadsafe(queue.put(frame), loop)``: a coroutine, a Task, a concurrent
Future and their chained callbacks, 50 times per second per peer. With a few dozen peers that costs
the loop more than the rest of the ingest, and the decoder threads queue for the GIL behind it, so the
loop falls behind (measured in docs/RELIABILITY.md).

:func:`use` (``"batched"``) swaps in :func:`batched_decoder_worker`: same queues, same
end-of-track marker and error handling, but one thread (:class:`DecodingThread`) decodes for every
receiver: every :data:`POLL_SECONDS` it takes what each receiver has queued, decodes it, and hands
it all over with one ``loop.call_soon_threadsafe``. Per 20 ms packet that leaves no thread wake-up,
no GIL hand-over and no loop wake-up, which at 32 peers cost more than the decoding itself (py-spy
and per-thread CPU in docs/RELIABILITY.md, "Where the monitor's CPU goes"). ``"aiortc"`` restores
aiortc's own worker. The swap is made only when aiortc's worker has the signature this module was
written against; otherwise aiortc's worker stays and a warning says so.

The batched worker also decodes Opus with :class:`~samos.monitor.sources.opus_plc.OpusPlcDecoder`
(``conceal=True``, the default, where libopus can be loaded), many packets at a time into mono
blocks (:class:`~samos.monitor.sources.opus_plc.PcmBlock`, no ``AudioFrame`` per packet): lost
packets are concealed by the codec (PLC, in-band FEC) instead of left out, and
:func:`samos.monitor.sources.webrtc.accept_offer` gives the receivers of the batched path
:class:`~samos.monitor.sources.jitter.AudioJitterBuffer`, which skips a lost packet instead of
discarding the good ones around it, and their connections
:mod:`~samos.monitor.sources.srtp_inline`'s ``data_received``, which decrypts and routes each SRTP
packet where it arrives instead of through a queue and a task. ``"aiortc"`` is stock aiortc
throughout: its jitter buffer, its receive task, no concealment.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import av
from aiortc import rtcrtpreceiver

from samos.monitor import osthread
from samos.monitor.sources import opus_plc

log = logging.getLogger(__name__)

Handoff = Literal["batched", "aiortc"]
AIORTC_WORKER = rtcrtpreceiver.decoder_worker
"""aiortc's own worker, as imported (restored by ``use("aiortc")``)."""
_EXPECTED = ("loop", "input_q", "output_q", "decode_error")
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_conceal = True


def get_decoder(codec: Any) -> Any:
    """The decoder for ``codec``: Opus with loss concealment when it is on and libopus loads, else
    aiortc's own."""
    if _conceal and codec.name.lower() == "opus" and opus_plc.available():
        return opus_plc.OpusPlcDecoder(channels=1)  # mono: what the source keeps (decode_blocks)
    return rtcrtpreceiver.get_decoder(codec)


POLL_SECONDS = 0.1
"""How often the decoding thread takes what every batched receiver has queued (s), unless a batch of
packets handled inline wakes it first (:func:`wake`): the most it adds to a packet's way to the
source (5 packets of 20 ms a stream per hand-off). The default, as
:data:`samos.monitor.sources.srtp_inline.DEFER_SECONDS`; :func:`use` sets both."""


MIN_BATCH_SECONDS, MAX_BATCH_SECONDS = 0.01, 1.0
"""The batches :func:`use` accepts (s)."""


@dataclass(eq=False)
class _Receiver:
    """One batched receiver's queues, as aiortc gave them to its decoder worker."""

    loop: asyncio.AbstractEventLoop
    input_q: queue.Queue[Any] | queue.SimpleQueue[Any]
    output_q: asyncio.Queue[Any]
    decode_error: threading.Event
    codec_name: str | None = None
    decoder: Any = None

    def take(self) -> tuple[list[Any], bool]:
        """Decode everything queued now: ``(items for the track's queue, ended)``. Opus with
        concealment gives mono :class:`~samos.monitor.sources.opus_plc.PcmBlock` runs, any other
        decoder its ``AudioFrame`` objects; a frame that fails to decode is skipped and sets
        ``decode_error`` (the decoder keeps its state)."""
        out: list[Any] = []
        opus: list[Any] = []  # packets for the block decoder, decoded together
        end = False
        while not end:
            try:
                item = self.input_q.get_nowait()
            except queue.Empty:
                break
            if item is None:
                end = True
                break
            codec, encoded_frame = item
            if codec.name != self.codec_name:
                self._decode_blocks(opus, out)
                self.decoder, self.codec_name = get_decoder(codec), codec.name
            if isinstance(self.decoder, opus_plc.OpusPlcDecoder):
                opus.append(encoded_frame)
                continue
            try:
                out.extend(self.decoder.decode(encoded_frame))
            except (av.FFmpegError, opus_plc.OpusDecodeError) as exc:
                self._failed(exc)
        self._decode_blocks(opus, out)
        return out, end

    def _decode_blocks(self, packets: list[Any], out: list[Any]) -> None:
        if packets:
            blocks, errors = self.decoder.decode_blocks(packets)
            out.extend(blocks)
            for exc in errors:
                self._failed(exc)
            packets.clear()

    def _failed(self, exc: Exception) -> None:
        log.warning("failed to decode a %s frame: %s", self.codec_name, exc)
        self.decode_error.set()


class DecodingThread:
    """One thread that decodes the packets of every batched receiver (of any event loop), every
    :data:`POLL_SECONDS`, and hands each loop everything it decoded in one ``call_soon_threadsafe``.

    It runs while receivers are registered and ends when the last one has ended; :meth:`add` starts
    it again. aiortc's event loop only appends packets to the receivers' queues: with nobody waiting
    on them, that wakes no thread.
    """

    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self._receivers: list[_Receiver] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def wake(self) -> None:
        """Take and decode what is queued now instead of at the next poll (any thread may call it;
        a wake that comes while the thread is decoding makes it take again right after)."""
        self._wake.set()

    def add(self, receiver: _Receiver) -> None:
        with self._lock:
            self._receivers.append(receiver)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="samos-decoder", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        osthread.name_current()
        try:
            while True:
                with self._lock:
                    receivers = list(self._receivers)
                    if not receivers:
                        self._thread = None
                        return
                t0 = time.monotonic()
                self._once(receivers)
                self._wake.wait(max(0.0, self.poll_seconds - (time.monotonic() - t0)))
                self._wake.clear()
        finally:  # should it ever die, the next add() starts a new one
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _once(self, receivers: list[_Receiver]) -> None:
        """Decode what each receiver has queued and deliver it, one hand-off per event loop."""
        per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[Any], list[Any], bool]]] = {}
        gone: list[_Receiver] = []
        for r in receivers:
            try:
                items, end = r.take()
            except Exception:  # a bug in one receiver's decoding must not stop every other stream
                log.exception("decoding %s audio failed: that track gets no more audio", r.codec_name)
                r.decode_error.set()
                items, end = [], True
            if items or end:
                per_loop.setdefault(r.loop, []).append((r.output_q, items, end))
            if end:
                gone.append(r)
        for loop, batch in per_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, batch)
            except RuntimeError:  # the loop is closed: nobody is left to read
                gone += [r for r in receivers if r.loop is loop]
        if gone:
            with self._lock:
                self._receivers = [r for r in self._receivers if r not in gone]


_DECODING = DecodingThread()


def wake() -> None:
    """Have the decoding thread take what the batched receivers have queued now (see
    :meth:`DecodingThread.wake`): :mod:`samos.monitor.sources.srtp_inline` calls it after each batch of
    packets it hands to the receivers, so that they wait for one batch, not for a batch and a poll."""
    _DECODING.wake()


def _deliver(batch: list[tuple[asyncio.Queue[Any], list[Any], bool]]) -> None:
    """On the loop: queue each track's decoded items, then aiortc's end marker (None) where it ended."""
    for output_q, items, end in batch:
        for item in items:
            output_q.put_nowait(item)
        if end:
            output_q.put_nowait(None)


def install(receiver: Any) -> bool:
    """Give an aiortc ``RTCRtpReceiver`` of the batched path (before it starts) a ``queue.SimpleQueue``
    for its encoded frames: aiortc's ``queue.Queue`` takes a lock and notifies a condition in Python
    for every packet the event loop hands over; ``SimpleQueue.put`` is one C call. Returns False (and
    keeps aiortc's queue) when the receiver is not laid out as expected."""
    current = getattr(receiver, _DECODER_QUEUE, None)
    if not isinstance(current, queue.Queue) or not current.empty():
        log.warning("aiortc's receiver has no empty decoder queue where samos expects one: keeping it")
        return False
    setattr(receiver, _DECODER_QUEUE, queue.SimpleQueue())
    return True


def batched_decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue[Any] | queue.SimpleQueue[Any],
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    """Thread body aiortc starts per receiver: hands the receiver's queues to the one
    :class:`DecodingThread` and returns (so aiortc's ``join`` at the end of the track never waits).

    ``(codec, encoded_frame)`` items from ``input_q`` become decoded items on ``output_q`` (for Opus
    with concealment: mono :class:`~samos.monitor.sources.opus_plc.PcmBlock` runs), ``None`` ends the
    track (after the items before it), a frame that fails to decode is skipped and sets
    ``decode_error``.
    """
    _DECODING.add(_Receiver(loop, input_q, output_q, decode_error))


def compatible() -> bool:
    """True when aiortc's worker has the signature :func:`batched_decoder_worker` replaces."""
    return tuple(inspect.signature(AIORTC_WORKER).parameters) == _EXPECTED and hasattr(
        rtcrtpreceiver, "get_decoder"
    )


def use(handoff: Handoff, conceal: bool = True, batch_seconds: float | None = None) -> Handoff:
    """Make receivers created from now on use ``handoff`` (and, with ``"batched"``, Opus loss
    concealment when ``conceal``); returns the hand-off in effect. ``batch_seconds`` (0.01-1 s; None:
    keep): how long the batched path lets received packets wait so that they are decrypted, decoded
    and handed to the loop together (:data:`POLL_SECONDS` and
    :data:`samos.monitor.sources.srtp_inline.DEFER_SECONDS`)."""
    global _conceal
    if handoff not in ("batched", "aiortc"):
        raise ValueError(f"webrtc hand-off must be 'batched' or 'aiortc', got {handoff!r}")
    if batch_seconds is not None:
        if not MIN_BATCH_SECONDS <= batch_seconds <= MAX_BATCH_SECONDS:
            raise ValueError(
                f"webrtc batch must be {MIN_BATCH_SECONDS:g}-{MAX_BATCH_SECONDS:g} s, got {batch_seconds!r}"
            )
        from samos.monitor.sources import srtp_inline  # it imports this module

        _DECODING.poll_seconds = srtp_inline.DEFER_SECONDS = batch_seconds
    _conceal = conceal
    if handoff == "batched" and not compatible():
        log.warning(
            "aiortc's decoder_worker%s is not the one samos knows: keeping aiortc's hand-off",
            inspect.signature(AIORTC_WORKER),
        )
        handoff = "aiortc"
    rtcrtpreceiver.decoder_worker = batched_decoder_worker if handoff == "batched" else AIORTC_WORKER  # type: ignore[assignment]
    return handoff


def concealing() -> bool:
    """True when receivers created now conceal lost Opus packets."""
    return current() == "batched" and _conceal and opus_plc.available()


def current() -> Handoff:
    """The hand-off receivers created now would use."""
    return "batched" if rtcrtpreceiver.decoder_worker is batched_decoder_worker else "aiortc"
