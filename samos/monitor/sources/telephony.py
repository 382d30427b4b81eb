"""Telephony media over websockets: the call audio a CPaaS or a PBX forks to a websocket server.

Two wire formats, each parsed by an I/O-free state machine that turns one websocket message into
decoded audio (or a reason to refuse it), and one :class:`WebsocketAudioSource` they feed:

- :class:`TwilioCall`: Twilio Media Streams (``<Stream>``): JSON text messages ``connected``,
  ``start`` (``streamSid``, ``mediaFormat`` ``{"encoding": "audio/x-mulaw", "sampleRate": 8000,
  "channels": 1}``, ``tracks``, ``customParameters``), ``media`` (``track``, ``chunk``,
  ``timestamp`` in ms from the start of the stream, ``payload``: base64 mu-law) and ``stop``;
  ``mark`` and ``dtmf`` are ignored. The stream clock is ``media.timestamp``: a jump forward is lost
  audio (``dropped``; a jump over ``MAX_GAP_SECONDS`` is followed instead), a message behind the
  audio already received is refused (``out_of_order``).
  The ``inbound`` track (the caller) is scored, or ``outbound``, or ``both`` (two streams, each on
  its own clock), as ``track`` says.
- :class:`PcmCall`: raw linear PCM in binary frames, as FreeSWITCH's mod_audio_fork (16-bit little
  endian at the rate given to ``uuid_audio_fork``, mono or stereo) and Asterisk's chan_websocket
  send it. The rate comes from the query (``rate=``, ``channels=``) or from chan_websocket's
  ``MEDIA_START`` control message (plain-text or JSON), whose ``format`` names the codec: ``slin``
  (8 kHz), ``slinNN`` (NN kHz), ``ulaw``, ``alaw``. Text messages are control events (mod_audio_fork's
  metadata, chan_websocket's ``MEDIA_XOFF`` ...): read, not scored. Samples split across frames are
  carried over. There are no timestamps: TCP loses nothing, the clock is the samples received.

Bad messages (not JSON, no ``event``, bad base64, media before ``start``, a second ``start``, an
unknown codec) are counted in :class:`CallStats` and dropped; they never end the call by themselves
(the HTTP side closes a connection that sends nothing valid for a while, see
``samos.monitor.ingest_telephony``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samos.monitor.source import AudioChunk, SourceEnded
from samos.monitor.sources.buffer import ChunkQueue
from samos.monitor.sources.rtp_codecs import Decoder

log = logging.getLogger(__name__)

TWILIO_RATE = 8_000
"""Twilio Media Streams send 8 kHz mu-law."""
MAX_GAP_SECONDS = 5.0
"""A jump of ``media.timestamp`` larger than this is not counted as lost audio: the stream follows it
(``CallStats.resyncs``), as the RTP source does with timestamps."""
ASTERISK_FORMATS: dict[str, tuple[str, int]] = {
    "slin": ("l16le", 8_000),
    **{f"slin{k}": ("l16le", k * 1000) for k in (12, 16, 24, 32, 44, 48, 96, 192)},
    "ulaw": ("pcmu", 8_000),
    "alaw": ("pcma", 8_000),
}
"""chan_websocket's ``format`` names -> (encoding, rate). ``slin44`` is 44.1 kHz (fixed below)."""
ASTERISK_FORMATS["slin44"] = ("l16le", 44_100)


class CallError(ValueError):
    """A message that cannot be used (counted and dropped by the caller). ``reason``: ``malformed``,
    ``out_of_order``, ``before_start`` or ``unsupported`` (a media format that cannot be decoded: the
    call cannot go on)."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class CallStats:
    """Counters of one telephony call (messages unless named otherwise; samples at the call's rate)."""

    messages: int = 0
    media: int = 0
    malformed: int = 0
    """Not JSON, not an object, a missing or mistyped field, bad base64, a broken frame."""
    out_of_order: int = 0
    """Media behind the audio already received (Twilio), or ``start`` after ``start``."""
    before_start: int = 0
    other_track: int = 0
    ignored: int = 0
    """Events read and not needed (``connected``, ``mark``, ``dtmf``, control messages)."""
    lost_samples: int = 0
    resyncs: int = 0
    """Timestamp jumps over ``MAX_GAP_SECONDS`` followed without counting them as loss."""
    samples: int = 0
    overflow_samples: int = 0
    end_reason: str | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Audio:
    """Decoded audio from one message: float32 ``[n]`` or ``[n, ch]`` after ``dropped`` lost samples;
    ``track``: Twilio's ``inbound``/``outbound``, ``audio`` for raw PCM."""

    samples: np.ndarray
    dropped: int = 0
    track: str = "audio"


TRACKS = ("inbound", "outbound", "both")
"""What a Twilio call may ask to score (``track``): the caller, the other party, or both."""


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise CallError(f"{key!r} missing or not a {getattr(kind, '__name__', kind)}")
    return value


def _int(value: Any, what: str) -> int:
    """Twilio sends numbers as strings ("chunk": "3", "timestamp": "60")."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise CallError(f"{what} {value!r} is not an integer") from None


class TwilioCall:
    """Twilio Media Streams message by message (see the module doc). ``track``: the one to score,
    ``inbound`` (the caller), ``outbound``, or ``both`` (each with its own clock)."""

    def __init__(self, track: str = "inbound", stats: CallStats | None = None) -> None:
        if track not in TRACKS:
            raise ValueError(f"track must be one of {', '.join(TRACKS)}, got {track!r}")
        self.tracks = self._tracks(track)
        self.stats = stats or CallStats()
        self.started = False
        self.stopped = False
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.parameters: dict[str, str] = {}
        self._decoders: dict[str, Decoder] = {}
        self._expected: dict[str, int] = {}  # per track: samples of audio placed so far (8 kHz)

    @staticmethod
    def _tracks(track: str) -> tuple[str, ...]:
        return ("inbound", "outbound") if track == "both" else (track,)

    rate = TWILIO_RATE

    def on_text(self, text: str) -> str | Audio | None:
        """One text message -> ``"start"`` (the call's parameters are known), ``"stop"``, decoded
        :class:`Audio`, or None (nothing to do). Raises :class:`CallError` for a message to drop."""
        self.stats.messages += 1
        try:
            msg = json.loads(text)
        except ValueError:
            raise CallError("not JSON") from None
        if not isinstance(msg, dict):
            raise CallError("not a JSON object")
        event = _field(msg, "event", str)
        if event == "start":
            return self._start(msg)
        if event == "media":
            return self._media(msg)
        if event == "stop":
            self.stopped = True
            return "stop"
        if event in ("connected", "mark", "dtmf"):
            self.stats.ignored += 1
            return None
        raise CallError(f"unknown event {event!r}")

    def _start(self, msg: dict[str, Any]) -> str:
        if self.started:
            self.stats.out_of_order += 1
            raise CallError("a second 'start'", "out_of_order")
        start = _field(msg, "start", dict)
        fmt = start.get("mediaFormat") or {}
        if not isinstance(fmt, dict):
            raise CallError("'mediaFormat' is not an object")
        encoding = str(fmt.get("encoding", "audio/x-mulaw")).lower()
        rate = _int(fmt.get("sampleRate", TWILIO_RATE), "sampleRate")
        channels = _int(fmt.get("channels", 1), "channels")
        if encoding != "audio/x-mulaw" or rate != TWILIO_RATE or channels != 1:
            raise CallError(
                f"unsupported media format {encoding} {rate} Hz x{channels} (Twilio sends audio/x-mulaw "
                "8000 Hz mono)",
                "unsupported",
            )
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            raise CallError("'customParameters' is not an object")
        self.parameters = {str(k): str(v) for k, v in params.items()}
        self.stream_sid = str(msg.get("streamSid") or start.get("streamSid") or "") or None
        self.call_sid = str(start.get("callSid") or "") or None
        track = self.parameters.get("track")
        if track in TRACKS:
            self.tracks = self._tracks(track)
        self._decoders = {t: Decoder("pcmu", TWILIO_RATE) for t in self.tracks}
        self._expected = dict.fromkeys(self.tracks, 0)
        self.started = True
        return "start"

    def _media(self, msg: dict[str, Any]) -> Audio | None:
        media = _field(msg, "media", dict)
        if not self.started:
            self.stats.before_start += 1
            raise CallError("'media' before 'start'", "before_start")
        track = media.get("track", "inbound")
        if track not in self._decoders:
            self.stats.other_track += 1
            return None
        try:
            payload = base64.b64decode(_field(media, "payload", str), validate=True)
        except (binascii.Error, ValueError):
            raise CallError("'payload' is not base64") from None
        ms = media.get("timestamp")
        position = None if ms is None else _int(ms, "timestamp") * TWILIO_RATE // 1000
        dropped = 0
        expected = self._expected[track]
        if position is not None:
            gap = position - expected
            tolerance = TWILIO_RATE // 100  # 10 ms: timestamps are whole milliseconds
            if gap < -tolerance:
                self.stats.out_of_order += 1
                raise CallError(
                    f"media at {ms} ms is behind the audio received ({expected} samples)",
                    "out_of_order",
                )
            if gap > MAX_GAP_SECONDS * TWILIO_RATE:  # not a loss but a bogus clock: follow it
                self.stats.resyncs += 1
                expected = position
            elif gap > tolerance:
                dropped = gap
        samples = self._decoders[track].decode(payload, expected + dropped)
        self._expected[track] = expected + dropped + len(samples)
        self.stats.media += 1
        self.stats.samples += len(samples)
        self.stats.lost_samples += dropped
        return Audio(samples, dropped, track)


_PLAIN_PAIR = re.compile(r"(\w+):(\S*)")


def parse_control(text: str) -> tuple[str, dict[str, Any]]:
    """A control message in chan_websocket's plain-text (``MEDIA_START connection_id:x format:ulaw``)
    or JSON (``{"event": "MEDIA_START", "format": "ulaw", ...}``) form -> (event, fields); any other
    JSON object (mod_audio_fork's metadata) -> ("", the object)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise CallError("control message is not valid JSON") from None
        if not isinstance(obj, dict):
            raise CallError("control message is not a JSON object")
        event = obj.get("event") or obj.get("command") or ""
        return (event if isinstance(event, str) else ""), obj
    if not text:
        raise CallError("empty control message")
    head, _, rest = text.partition(" ")
    return head, dict(_PLAIN_PAIR.findall(rest))


class PcmCall:
    """Raw PCM frames (mod_audio_fork, chan_websocket) message by message; see the module doc.

    ``encoding``: ``l16le`` (signed 16-bit little endian, the default), ``pcmu`` or ``pcma``;
    ``rate``/``channels``: as the sender was told (``None`` rate: wait for ``MEDIA_START``).
    """

    def __init__(
        self, rate: int | None, channels: int = 1, encoding: str = "l16le", stats: CallStats | None = None
    ) -> None:
        if encoding not in ("l16le", "pcmu", "pcma"):
            raise ValueError(f"encoding must be l16le, pcmu or pcma, got {encoding!r}")
        if rate is not None and not 8_000 <= rate <= 192_000:
            raise ValueError(f"rate must be 8000-192000 Hz, got {rate}")
        if not 1 <= channels <= 8:
            raise ValueError(f"channels must be 1-8, got {channels}")
        self.rate, self.channels, self.encoding = rate, channels, encoding
        self.stats = stats or CallStats()
        self.format_event = False  # the rate and codec came from a MEDIA_START
        self._carry = b""
        self._decoder: Decoder | None = None
        self._position = 0

    def on_text(self, text: str) -> str | None:
        """A control message: ``"format"`` when it set the codec and rate, ``"hangup"`` for
        chan_websocket's ``HANGUP``, else None."""
        self.stats.messages += 1
        event, fields = parse_control(text)
        if event.upper() == "MEDIA_START" and "format" in fields:
            name = str(fields["format"]).lower()
            if name not in ASTERISK_FORMATS:
                raise CallError(
                    f"unsupported format {name!r} (use one of {', '.join(ASTERISK_FORMATS)})", "unsupported"
                )
            if self.stats.media:
                self.stats.out_of_order += 1
                raise CallError("MEDIA_START after media: the format cannot change mid-call", "out_of_order")
            self.encoding, self.rate = ASTERISK_FORMATS[name]
            self.channels = 1
            self.format_event = True
            return "format"
        if event.upper() == "HANGUP":
            return "hangup"
        self.stats.ignored += 1
        return None

    def on_binary(self, data: bytes) -> Audio:
        """One binary frame -> decoded audio (a partial sample frame is kept for the next one)."""
        self.stats.messages += 1
        if self.rate is None:
            self.stats.before_start += 1
            raise CallError(
                "audio before the rate is known (give ?rate= or send MEDIA_START first)", "before_start"
            )
        data = self._carry + data
        width = (2 if self.encoding == "l16le" else 1) * self.channels
        whole = len(data) - len(data) % width
        self._carry = data[whole:]
        data = data[:whole]
        if self.encoding == "l16le":
            pcm = np.frombuffer(data, "<i2").astype(np.float32) * np.float32(1 / 32768)
            samples = pcm if self.channels == 1 else pcm.reshape(-1, self.channels)
        else:
            if self._decoder is None:
                self._decoder = Decoder(self.encoding, self.rate)
            samples = self._decoder.decode(data, self._position) if data else np.zeros(0, np.float32)
        self._position += len(samples)
        self.stats.media += 1
        self.stats.samples += len(samples)
        return Audio(samples)


@dataclass(frozen=True)
class CallOptions:
    """Buffering of one telephony source: ``batch_seconds`` per chunk, ``buffer_seconds`` held before
    the oldest audio is dropped (a reader that fell behind)."""

    batch_seconds: float = 0.1
    buffer_seconds: float = 5.0


class WebsocketAudioSource:
    """The audio of one websocket call as a :class:`~samos.monitor.source.Source`.

    The websocket handler (``samos.monitor.ingest_telephony``) :meth:`feed`\\ s decoded audio and calls
    :meth:`end` when the call is over; ``recv`` hands out ``batch_seconds`` chunks at ``rate`` Hz and
    raises :class:`SourceEnded` after the last one. ``close`` (the monitor stopping the stream) sets
    ``closed``, which the handler watches to hang up.
    """

    def __init__(self, name: str, kind: str, rate: int, options: CallOptions | None = None) -> None:
        self.name, self.kind, self.rate = name, kind, rate
        self.options = options or CallOptions()
        self._queue = ChunkQueue(rate, self.options.batch_seconds, round(self.options.buffer_seconds * rate))
        self._wakeup = asyncio.Event()
        self.closed = asyncio.Event()
        self._ended = False
        self.end_reason: str | None = None

    def feed(self, audio: Audio, t: float | None = None) -> None:
        """Queue decoded audio (on the event loop)."""
        if self._ended:
            return
        self._queue.put(audio.samples, audio.dropped, time.monotonic() if t is None else t)
        if self._queue.ready(time.monotonic()) or len(self._queue) == 1:
            self._wakeup.set()

    @property
    def overflow_samples(self) -> int:
        return self._queue.overflow

    def end(self, reason: str) -> None:
        """No more audio will come: ``recv`` returns what is queued, then raises SourceEnded."""
        if not self._ended:
            self._ended = True
            self.end_reason = reason
            self._wakeup.set()
            log.info("%s: call ended (%s)", self.name, reason)

    async def recv(self) -> AudioChunk:
        while True:
            now = time.monotonic()
            if self._queue.ready(now) or (self._ended and len(self._queue)):
                return self._queue.take()
            if self._ended:
                raise SourceEnded(f"{self.name}: {self.end_reason or 'ended'}")
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), self._queue.wait_limit(now))
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop (idempotent): queued audio is discarded and the handler hangs up."""
        self.end("closed by the monitor")
        self._queue.clear()
        self.closed.set()
