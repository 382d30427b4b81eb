"""aiortc's hand-off of decoded audio to the event loop, made cheap (a process-wide choice).

aiortc decodes each received track in a thread of its own (``decoder_worker`` in
``aiortc.rtcrtpreceiver``) and hands every decoded 20 ms frame back to the event loop with
``asyncio.run_coroutine_threadsafe(queue.put(frame), loop)``: a coroutine, a Task, a concurrent
Future and their chained callbacks, 50 times per second per peer. With a few dozen peers that costs
the loop more than the rest of the ingest, and the decoder threads queue for the GIL behind it, so the
loop falls behind (measured in docs/RELIABILITY.md).

:func:`use` (``"batched"``) swaps in :func:`batched_decoder_worker`: same queues, same
end-of-track marker and error handling, but it decodes everything that is queued and hands the frames
over with one ``loop.call_soon_threadsafe``. ``"aiortc"`` restores aiortc's own worker. The swap is
made only when aiortc's worker has the signature this module was written against; otherwise aiortc's
worker stays and a warning says so.

The batched worker also decodes Opus with :class:`~samos.monitor.sources.opus_plc.OpusPlcDecoder`
(``conceal=True``, the default, where libopus can be loaded): lost packets are concealed by the
codec (PLC, in-band FEC) instead of left out, and :func:`samos.monitor.sources.webrtc.accept_offer`
gives the receivers of the batched path :class:`~samos.monitor.sources.jitter.AudioJitterBuffer`,
which skips a lost packet instead of discarding the good ones around it. ``"aiortc"`` is stock
aiortc throughout: its jitter buffer, no concealment.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
from typing import Any, Literal

import av
from aiortc import rtcrtpreceiver

from samos.monitor.sources import opus_plc

log = logging.getLogger(__name__)

Handoff = Literal["batched", "aiortc"]
AIORTC_WORKER = rtcrtpreceiver.decoder_worker
"""aiortc's own worker, as imported (restored by ``use("aiortc")``)."""
_EXPECTED = ("loop", "input_q", "output_q", "decode_error")
_conceal = True


def get_decoder(codec: Any) -> Any:
    """The decoder for ``codec``: Opus with loss concealment when it is on and libopus loads, else
    aiortc's own."""
    if _conceal and codec.name.lower() == "opus" and opus_plc.available():
        return opus_plc.OpusPlcDecoder()
    return rtcrtpreceiver.get_decoder(codec)


def _deliver(output_q: asyncio.Queue[Any], frames: list[Any], end: bool) -> None:
    """On the loop: queue decoded ``frames`` for the track, then aiortc's end marker (None) if ``end``."""
    for frame in frames:
        output_q.put_nowait(frame)
    if end:
        output_q.put_nowait(None)


def batched_decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue[Any],
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    """Thread body: ``(codec, encoded_frame)`` items from ``input_q`` -> decoded frames on ``output_q``.

    Blocks for one item, then takes whatever else is queued; decodes them in order and hands the
    decoded frames to the loop at once. ``None`` ends the track (after the frames before it). A
    frame that fails to decode is skipped and sets ``decode_error``, the decoder's state is kept.
    """
    codec_name: str | None = None
    decoder: Any = None
    end = False
    while not end:
        items = [input_q.get()]
        while True:
            try:
                items.append(input_q.get_nowait())
            except queue.Empty:
                break
        frames: list[Any] = []
        for item in items:
            if item is None:
                end = True
                break
            codec, encoded_frame = item
            if codec.name != codec_name:
                decoder = get_decoder(codec)
                codec_name = codec.name
            try:
                frames.extend(decoder.decode(encoded_frame))
            except (av.FFmpegError, opus_plc.OpusDecodeError) as exc:
                log.warning("failed to decode a %s frame: %s", codec.name, exc)
                decode_error.set()
        if frames or end:
            try:
                loop.call_soon_threadsafe(_deliver, output_q, frames, end)
            except RuntimeError:  # the loop is closed: nobody is left to read
                return


def compatible() -> bool:
    """True when aiortc's worker has the signature :func:`batched_decoder_worker` replaces."""
    return tuple(inspect.signature(AIORTC_WORKER).parameters) == _EXPECTED and hasattr(
        rtcrtpreceiver, "get_decoder"
    )


def use(handoff: Handoff, conceal: bool = True) -> Handoff:
    """Make receivers created from now on use ``handoff`` (and, with ``"batched"``, Opus loss
    concealment when ``conceal``); returns the hand-off in effect."""
    global _conceal
    _conceal = conceal
    if handoff not in ("batched", "aiortc"):
        raise ValueError(f"webrtc hand-off must be 'batched' or 'aiortc', got {handoff!r}")
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
