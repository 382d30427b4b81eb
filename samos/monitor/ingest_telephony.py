"""The telephony websocket endpoints: ``/twilio`` (Twilio Media Streams) and ``/pcm`` (raw PCM from
mod_audio_fork or chan_websocket), one :class:`_Call` each."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from samos.monitor.ingest_common import CALLS, INGEST_METRICS, _keys, _precheck, _presented_token, _refuse
from samos.monitor.security import token_ok
from samos.monitor.sources.telephony import (
    TRACKS,
    Audio,
    CallError,
    PcmCall,
    TwilioCall,
    WebsocketAudioSource,
)

# the ingest endpoints' logger keeps its name from before the split (log filters, %(name)s)
log = logging.getLogger("samos.monitor.ingest_http")


class _Call:
    """One telephony websocket: reads messages, feeds its stream (one per track scored), ends them."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, kind: str) -> None:
        http = _keys()
        self.request, self.ws, self.kind = request, ws, kind
        self.app = request.app
        self.monitor = self.app[http.MONITOR]
        self.cfg = self.app[http.CONFIG]
        self.limits = self.app[CALLS].limits
        self.metrics = self.app[INGEST_METRICS]
        self.sources: dict[str, WebsocketAudioSource] = {}
        """The call's streams by track (``audio`` for /pcm; ``inbound``/``outbound`` for Twilio)."""
        self.bad_in_a_row = 0
        self._closers: list[asyncio.Task[None]] = []
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + self.limits.inactivity_timeout

    async def reject(self, e: CallError) -> str | None:
        """A message the call cannot use: close the socket for an unsupported format (1003) or too many
        invalid messages in a row (1007) and return why; None: the message is dropped, the call goes on."""
        if e.reason == "unsupported":
            await self.ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=str(e)[:120].encode())
            return str(e)
        if self.bad(e):
            await self.ws.close(code=WSCloseCode.INVALID_TEXT, message=b"too many invalid messages")
            return "too many invalid messages"
        return None

    def alive(self) -> None:
        """The call did something that counts (a start, audio): ``inactivity_timeout`` runs anew.
        Other messages (control events, marks, garbage) do not keep a call open."""
        self._deadline = self._loop.time() + self.limits.inactivity_timeout

    async def open_stream(self, name: str, rate: int, track: str = "audio") -> bool:
        """Start the monitor's stream for ``track``; False (and the call closed with 1011) when refused."""
        source = WebsocketAudioSource(name, self.kind, rate, self.limits.call)
        try:
            source.name = str(await self.monitor.add_source(source))
        except ValueError as e:
            self.metrics.results.labels(self.kind, "refused").inc()
            await self.ws.close(code=WSCloseCode.INTERNAL_ERROR, message=f"refused: {e}"[:120].encode())
            return False
        self.sources[track] = source
        self.app[CALLS].sources[source.name] = source
        self._closers.append(
            asyncio.create_task(self._hang_up_when_closed(source), name=f"ingest-call:{source.name}")
        )
        self.metrics.results.labels(self.kind, "accepted").inc()
        log.info("%s call from %s is stream %r (%d Hz)", self.kind, self.request.remote, source.name, rate)
        return True

    async def _hang_up_when_closed(self, source: WebsocketAudioSource) -> None:
        await source.closed.wait()
        await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"the monitor stopped the stream")

    def bad(self, error: CallError) -> bool:
        """Count an invalid message; True when the call has sent too many in a row."""
        self.metrics.dropped.labels(self.kind, error.reason).inc()
        self.bad_in_a_row += 1
        log.debug("%s: dropped a message: %s", self.kind, error)
        return self.bad_in_a_row >= self.limits.max_bad_messages

    def feed(self, audio: Audio) -> None:
        self.bad_in_a_row = 0
        self.alive()
        source = self.sources.get(audio.track)
        if source is not None:
            source.feed(audio)

    async def receive(self, timeout: float | None = None) -> Any:
        """The next message, or None after ``timeout`` (default ``inactivity_timeout``) s without one."""
        try:
            return await self.ws.receive(
                timeout=self.limits.inactivity_timeout if timeout is None else timeout
            )
        except TimeoutError:
            return None

    async def finish(self, reason: str) -> None:
        calls = self.app[CALLS].sources
        for source in self.sources.values():
            source.end(reason)
            if calls.get(source.name) is source:
                del calls[source.name]
        for task in self._closers:
            task.cancel()
        await asyncio.gather(*self._closers, return_exceptions=True)
        if not self.ws.closed:
            await self.ws.close()


async def _upgrade(request: web.Request, kind: str, protocols: tuple[str, ...] = ()) -> Any:
    """Checks, a call slot and the websocket upgrade: the prepared websocket, or a refusal Response."""
    refusal = _precheck(request, kind)
    if refusal is not None:
        return refusal
    calls = request.app[CALLS]
    ws = web.WebSocketResponse(
        max_msg_size=calls.limits.max_message_bytes,
        heartbeat=calls.limits.heartbeat,
        protocols=protocols,
    )
    if not ws.can_prepare(request).ok:
        return _refuse(
            request,
            kind,
            426,
            "this endpoint takes a websocket (Upgrade: websocket)",
            "bad_request",
            Upgrade="websocket",
        )
    if not calls.reserve(ws, kind):
        return _refuse(
            request,
            kind,
            503,
            f"too many calls (limit {calls.limits.max_calls})",
            "busy",
            **{"Retry-After": "5"},
        )
    try:
        await ws.prepare(request)
    except BaseException:
        calls.release(ws)
        raise
    return ws


def _closed_reason(msg: Any, ws: web.WebSocketResponse) -> str:
    if msg is not None and msg.type == WSMsgType.ERROR:
        return f"connection error ({msg.data})"
    code = ws.close_code
    if code == WSCloseCode.MESSAGE_TOO_BIG:
        return "message too big"
    return "connection closed without stop"


async def _twilio(request: web.Request) -> web.StreamResponse:
    ws = await _upgrade(request, "twilio")
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    call = _Call(request, ws, "twilio")
    token = _presented_token(request)
    expected = call.cfg.auth.token
    track = request.query.get("track", "inbound")
    twilio = TwilioCall(track=track if track in TRACKS else "inbound")
    reason = "ended"
    try:
        while True:
            msg = await call.receive()
            if msg is None and not twilio.started:  # a slot is not held without a start
                reason = f"no start within {call.limits.inactivity_timeout:g} s"
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no start message")
                break
            if msg is None:
                reason = f"no media for {call.limits.inactivity_timeout:g} s"
                break
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                reason = _closed_reason(msg, ws)
                break
            if msg.type != WSMsgType.TEXT:
                if (reason := await call.reject(CallError("binary frame"))) is not None:
                    break
                continue
            try:
                result = twilio.on_text(msg.data)
            except CallError as e:
                if (reason := await call.reject(e)) is not None:
                    break
                continue
            if result == "start":
                given = token or twilio.parameters.get("token")
                if expected is not None and not token_ok(given, expected):
                    call.metrics.results.labels("twilio", "unauthorized").inc()
                    reason = "invalid or missing token"
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"invalid or missing token")
                    break
                name = request.query.get("name") or twilio.parameters.get("name") or "twilio"
                if not _keys().NAME_RE.match(name) or len(name) > 55:
                    name = "twilio"
                both = twilio.tracks == ("inbound", "outbound")
                opened = True
                for t in twilio.tracks:  # both tracks: NAME-inbound (the caller), NAME-outbound
                    opened = opened and await call.open_stream(
                        f"{name}-{t}" if both else name, twilio.rate, t
                    )
                if not opened:
                    reason = "refused"
                    break
                call.bad_in_a_row = 0
                call.alive()
            elif result == "stop":
                reason = "stop"
                break
            elif result is not None and not isinstance(result, str):
                call.feed(result)
            else:
                call.bad_in_a_row = 0
    finally:
        await call.finish(reason)
        request.app[CALLS].release(ws)
    return ws


async def _pcm(request: web.Request) -> web.StreamResponse:
    kind = "pcm"
    try:
        rate = int(request.query["rate"]) if "rate" in request.query else None
        channels = int(request.query.get("channels", "1"))
        encoding = request.query.get("encoding", "l16le").lower()
        encoding = {"l16": "l16le", "slin": "l16le", "ulaw": "pcmu", "alaw": "pcma"}.get(encoding, encoding)
        pcm = PcmCall(rate, channels, encoding)
    except ValueError as e:
        refusal = _precheck(request, kind)
        return refusal or _refuse(request, kind, 400, f"bad query: {e}", "bad_request")
    expected = request.app[_keys().CONFIG].auth.token
    if expected is not None and _presented_token(request) is None and _precheck(request, kind) is None:
        # no later message can carry it (unlike Twilio's start): refused before the upgrade
        return _refuse(request, kind, 401, "missing token", "unauthorized", **{"WWW-Authenticate": "Bearer"})
    ws = await _upgrade(request, kind, protocols=("audio.drachtio.org", "media"))
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    call = _Call(request, ws, kind)
    name = request.query.get("name") or "pcm"
    reason = "ended"
    try:
        while True:
            msg = await call.receive()
            if msg is None:
                reason = f"no audio for {call.limits.inactivity_timeout:g} s"
                break
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                reason = _closed_reason(msg, ws)
                if reason == "connection closed without stop":
                    reason = "connection closed"
                break
            try:
                if msg.type == WSMsgType.TEXT:
                    event = pcm.on_text(msg.data)
                    call.bad_in_a_row = 0
                    if event == "hangup":
                        reason = "hangup"
                        break
                    continue
                audio = pcm.on_binary(msg.data)
            except CallError as e:
                if (reason := await call.reject(e)) is not None:
                    break
                continue
            if not call.sources:
                assert pcm.rate is not None
                if not await call.open_stream(name, pcm.rate):
                    reason = "refused"
                    break
            call.feed(audio)
    finally:
        await call.finish(reason)
        request.app[CALLS].release(ws)
    return ws
