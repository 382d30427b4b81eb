"""Ingest endpoints on the monitor's HTTP app: WHIP publishers and telephony media websockets.

Added to the app by :func:`add_ingest_routes` (called from :func:`samos.monitor.http.build_http_app`):

- ``POST /whip`` (RFC 9725): body an SDP offer (``Content-Type: application/sdp``); ``201 Created``
  with the SDP answer and ``Location: /whip/<id>`` (the session's resource). ``DELETE /whip/<id>``
  ends the stream (200; 404 for an unknown or ended session). ``PATCH /whip/<id>`` (trickle ICE, ICE
  restart) is not supported: ``405 Method Not Allowed`` with ``Allow: DELETE``, as RFC 9725 asks of a
  session that supports neither. ``OPTIONS /whip``: ``204`` with ``Accept-Post: application/sdp``.
  Publishers count against ``max_peers`` together with ``/offer``'s and get the same WebRTC source
  (Opus, see docs/WEBRTC.md); the stream name is ``?name=`` (default ``whip``).
- ``GET /twilio`` (websocket): Twilio Media Streams (``<Connect><Stream url="wss://.../twilio">``).
  The stream name and the token may come as ``<Parameter name="name|token" value=...>`` in the
  ``start`` message (Twilio's stream URL carries no query string), or as ``?name=`` / ``?token=`` /
  ``Authorization: Bearer``.
- ``GET /pcm`` (websocket): raw PCM frames from FreeSWITCH's mod_audio_fork or Asterisk's
  chan_websocket: ``?rate=HZ`` (or chan_websocket's ``MEDIA_START``), ``channels=``,
  ``encoding=l16le|pcmu|pcma``, ``name=`` (default ``pcm``), ``token=``. Subprotocols
  ``audio.drachtio.org`` (mod_audio_fork) and ``media`` (chan_websocket) are accepted.

Tokens (when ``auth.token`` is set) are checked as for ``/offer``, in constant time. Refusals before
the websocket upgrade are JSON ``{"error": ...}`` with 400 (bad query), 401 (token, with
``WWW-Authenticate: Bearer``), 403 (browser origin), 426 (not a websocket upgrade), 503 (too many
calls, ``Retry-After``); ``/pcm`` without a token when one is set gets 401 too. After the upgrade
a call is closed with 1008 (a Twilio ``start`` without the token), 1007 (``max_bad_messages``
invalid messages in a row), 1009 (a message over ``max_message_bytes``), 1003 (an unsupported
media format), 1011 (the monitor refused the stream), 1001 (the monitor stopped the stream or shut
down), or 1000 after ``stop``/inactivity. Every invalid message is counted
(``samos_ingest_messages_dropped_total{kind,reason}``) and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import CollectorRegistry, Counter, Gauge

from samos.monitor.security import origin_allowed, token_ok
from samos.monitor.sources.telephony import (
    TRACKS,
    Audio,
    CallError,
    CallOptions,
    PcmCall,
    TwilioCall,
    WebsocketAudioSource,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestLimits:
    """Limits of the telephony websockets.

    ``max_calls``: calls at once (more get 503 before the upgrade). ``max_message_bytes``: a larger
    message closes the call (1009). ``inactivity_timeout``: seconds without audio (or, before it,
    without Twilio's ``start``) after which a call ends; other messages do not keep it open.
    ``max_bad_messages``: invalid messages in a row after which a call is closed (1007).
    ``heartbeat``: websocket ping interval, s (a vanished peer is noticed within about twice that).
    """

    max_calls: int = 64
    max_message_bytes: int = 64 * 1024
    inactivity_timeout: float = 10.0
    max_bad_messages: int = 50
    heartbeat: float = 20.0
    call: CallOptions = CallOptions()

    @classmethod
    def from_config(cls, ingest: Any) -> IngestLimits:
        """From the monitor's ``cfg.ingest`` (defaults for what it does not have)."""
        if ingest is None:
            return cls()
        return cls(
            max_calls=ingest.telephony_max_streams,
            max_message_bytes=ingest.telephony_max_message_bytes,
            inactivity_timeout=ingest.telephony_inactivity_timeout,
        )


class IngestMetrics:
    """The ingest registry: the RTP sources' counters (:class:`RtpCollector`),
    ``samos_ingest_calls_active{kind}``, ``samos_ingest_calls_total{kind,result}``,
    ``samos_ingest_messages_dropped_total{kind,reason}``, ``samos_whip_sessions``."""

    def __init__(self, monitor: Any = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        if monitor is not None:
            r.register(RtpCollector(monitor))
        self.calls = Gauge("samos_ingest_calls_active", "Telephony websocket calls now", ["kind"], registry=r)
        self.results = Counter(
            "samos_ingest_calls_total",
            "Telephony calls and WHIP offers by result",
            ["kind", "result"],
            registry=r,
        )
        self.dropped = Counter(
            "samos_ingest_messages_dropped_total", "Invalid messages dropped", ["kind", "reason"], registry=r
        )
        self.whip = Gauge("samos_whip_sessions", "Live WHIP sessions", registry=r)


RTP_RESULTS = (
    "received",
    "lost",
    "late",
    "duplicate",
    "jumps",
    "malformed",
    "rtcp",
    "oversized",
    "wrong_pt",
    "other_ssrc",
    "other_address",
    "flood",
    "decode_errors",
)
"""``samos_rtp_packets_total{stream,result}`` labels: RtpStats counters (``received`` = ``packets``)."""


class RtpCollector:
    """Prometheus collector of the RTP sources the monitor is running (read at scrape time):
    ``samos_rtp_packets_total{stream,result}``, ``samos_rtp_loss_ratio{stream}``,
    ``samos_rtp_ssrc_changes_total{stream}``."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        packets = CounterMetricFamily(
            "samos_rtp_packets", "RTP datagrams by result", labels=["stream", "result"]
        )
        loss = GaugeMetricFamily(
            "samos_rtp_loss_ratio", "Lost / (received + lost) RTP packets", labels=["stream"]
        )
        ssrc = CounterMetricFamily("samos_rtp_ssrc_changes", "SSRC take-overs", labels=["stream"])
        for name, stream in list(getattr(self.monitor, "streams", {}).items()):
            stats = getattr(stream.source, "stats", None)
            if getattr(stream.source, "kind", None) != "rtp" or stats is None:
                continue
            for result in RTP_RESULTS:
                field = {"received": "packets", "lost": "lost_packets"}.get(result, result)
                packets.add_metric([name, result], float(getattr(stats, field)))
            loss.add_metric([name], stats.loss_rate)
            ssrc.add_metric([name], float(stats.ssrc_changes))
        yield from (packets, loss, ssrc)


class Calls:
    """The live telephony calls: a slot count for ``max_calls``, and their websockets to close."""

    def __init__(self, limits: IngestLimits, metrics: IngestMetrics) -> None:
        self.limits, self.metrics = limits, metrics
        self.sockets: dict[web.WebSocketResponse, str] = {}
        self.sources: dict[str, WebsocketAudioSource] = {}

    def reserve(self, ws: web.WebSocketResponse, kind: str) -> bool:
        if len(self.sockets) >= self.limits.max_calls:
            return False
        self.sockets[ws] = kind
        self.metrics.calls.labels(kind).inc()
        return True

    def release(self, ws: web.WebSocketResponse) -> None:
        kind = self.sockets.pop(ws, None)
        if kind is not None:
            self.metrics.calls.labels(kind).dec()

    async def close(self) -> None:
        """Shutdown: hang up every call (1001)."""
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"monitor shutting down")


CALLS = web.AppKey("samos_ingest_calls", Calls)
INGEST_METRICS = web.AppKey("samos_ingest_metrics", IngestMetrics)
WHIP_SESSIONS = web.AppKey("samos_whip_sessions", dict)


def _keys() -> Any:
    from samos.monitor import http

    return http


def _presented_token(request: web.Request) -> str | None:
    return _keys()._bearer(request) or request.query.get("token")


def _refuse(
    request: web.Request, kind: str, status: int, message: str, result: str, **headers: str
) -> web.Response:
    request.app[INGEST_METRICS].results.labels(kind, result).inc()
    log.info("%s %s from %s refused (%d): %s", request.method, request.path, request.remote, status, message)
    return _keys()._error(status, message, **headers)


def _precheck(request: web.Request, kind: str) -> web.Response | None:
    """What every ingest request is checked for before anything else (origin, presented token, name)."""
    http = _keys()
    cfg = request.app[http.CONFIG]
    origin = request.headers.get("Origin")
    if not origin_allowed(origin, request.host, getattr(cfg.http, "allowed_origins", ()), same_port=True):
        return _refuse(request, kind, 403, f"origin {origin!r} may not publish here", "forbidden")
    token = _presented_token(request)
    if cfg.auth.token is not None and token is not None and not token_ok(token, cfg.auth.token):
        return _refuse(request, kind, 401, "invalid token", "unauthorized", **{"WWW-Authenticate": "Bearer"})
    name = request.query.get("name")
    if name is not None and not http.NAME_RE.match(name):
        return _refuse(
            request,
            kind,
            400,
            f"invalid stream name {name!r}: use 1-64 letters, digits, '.', '_' or '-'",
            "bad_request",
        )
    return None


# ------------------------------------------------------------------------------------------ websockets
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


# ------------------------------------------------------------------------------------------------ WHIP
def _sdp_error(request: web.Request, status: int, message: str, result: str, **headers: str) -> web.Response:
    return _refuse(request, "whip", status, message, result, **headers)


async def _whip_post(request: web.Request) -> web.Response:
    http = _keys()
    app = request.app
    cfg, limits, peers = app[http.CONFIG], app[http.LIMITS], app[http.PEERS]
    refusal = _precheck(request, "whip")
    if refusal is not None:
        return refusal
    if cfg.auth.token is not None and _presented_token(request) is None:
        return _sdp_error(request, 401, "missing token", "unauthorized", **{"WWW-Authenticate": "Bearer"})
    if request.content_type != "application/sdp":
        return _sdp_error(
            request,
            415,
            f"Content-Type must be application/sdp, got {request.content_type!r}",
            "bad_request",
            **{"Accept-Post": "application/sdp"},
        )
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        return _sdp_error(
            request,
            413,
            f"offer too large ({request.content_length} > {limits.max_body_bytes} bytes)",
            "bad_request",
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _sdp_error(
            request, 413, f"offer too large (limit {limits.max_body_bytes} bytes)", "bad_request"
        )
    if len(raw) > limits.max_body_bytes:
        return _sdp_error(request, 413, f"offer too large ({len(raw)} bytes)", "bad_request")
    try:
        sdp = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _sdp_error(request, 400, "the offer is not UTF-8 text", "bad_offer")
    if not peers.reserve():
        return _sdp_error(
            request,
            503,
            f"too many WebRTC publishers (limit {limits.max_peers})",
            "busy",
            **{"Retry-After": "5"},
        )
    from samos.monitor.sources.webrtc import OfferError, accept_offer

    try:
        try:
            source, answer = await accept_offer(
                sdp, "offer", request.query.get("name") or "whip", limits.webrtc
            )
        except OfferError as e:
            return _sdp_error(request, 400, str(e), "bad_offer")
        try:
            name = await app[http.MONITOR].add_source(source)
        except ValueError as e:
            await source.close()
            return _sdp_error(request, 409, f"the monitor refused the stream: {e}", "refused")
        except BaseException:
            await source.close()
            raise
        source.name = str(name or source.name)
        peers.add(source)
    finally:
        peers.release()
    sessions = app[WHIP_SESSIONS]
    for key in [k for k, s in sessions.items() if s.ended]:
        del sessions[key]
    resource = secrets.token_urlsafe(16)
    sessions[resource] = source
    app[INGEST_METRICS].results.labels("whip", "accepted").inc()
    log.info("WHIP publisher %s is stream %r", request.remote, source.name)
    return web.Response(
        status=201,
        body=answer.sdp.encode(),
        headers={
            "Content-Type": "application/sdp",
            "Location": f"/whip/{resource}",
            "ETag": f'"{resource}"',
            "X-Samos-Stream": source.name,
        },
    )


def _session(request: web.Request) -> tuple[str, Any] | web.Response:
    http = _keys()
    cfg = request.app[http.CONFIG]
    token = _presented_token(request)
    if cfg.auth.token is not None and not token_ok(token, cfg.auth.token):
        return _sdp_error(
            request, 401, "missing or invalid token", "unauthorized", **{"WWW-Authenticate": "Bearer"}
        )
    resource = request.match_info["resource"]
    source = request.app[WHIP_SESSIONS].get(resource)
    if source is None or source.ended:
        return _sdp_error(request, 404, "no such WHIP session (ended, or never created)", "not_found")
    return resource, source


async def _whip_delete(request: web.Request) -> web.Response:
    found = _session(request)
    if isinstance(found, web.Response):
        return found
    resource, source = found
    del request.app[WHIP_SESSIONS][resource]
    request.app[INGEST_METRICS].results.labels("whip", "deleted").inc()
    await source.close()  # the stream ends: the monitor scores what is left and sends stream_end
    log.info("WHIP session of stream %r deleted", source.name)
    return web.Response(status=200)


async def _whip_patch(request: web.Request) -> web.Response:
    found = _session(request)
    if isinstance(found, web.Response):
        return found
    # RFC 9725 4.3.1: a session that supports neither trickle ICE nor ICE restarts answers 405.
    return _sdp_error(
        request,
        405,
        "trickle ICE and ICE restarts are not supported: send the offer with all candidates",
        "unsupported",
        Allow="DELETE",
    )


async def _whip_options(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Accept-Post": "application/sdp", "Allow": "POST, OPTIONS"})


async def _close_ingest(app: web.Application) -> None:
    await app[CALLS].close()
    for source in list(app[WHIP_SESSIONS].values()):
        await source.close()
    app[WHIP_SESSIONS].clear()


def add_ingest_routes(app: web.Application, limits: IngestLimits | None = None) -> IngestMetrics:
    """Add ``/whip``, ``/twilio`` and ``/pcm`` to the monitor's app (which must hold ``http.MONITOR``,
    ``http.CONFIG``, ``http.LIMITS`` and ``http.PEERS``); returns their metrics."""
    http = _keys()
    limits = limits or IngestLimits.from_config(getattr(app[http.CONFIG], "ingest", None))
    metrics = IngestMetrics(app[http.MONITOR])
    app[INGEST_METRICS] = metrics
    app[CALLS] = Calls(limits, metrics)
    sessions: dict[str, Any] = {}
    app[WHIP_SESSIONS] = sessions
    # read at scrape time: a session that ended by itself (peer gone) is not counted
    metrics.whip.set_function(lambda: sum(not s.ended for s in list(sessions.values())))
    app.router.add_post("/whip", _whip_post)
    app.router.add_route("OPTIONS", "/whip", _whip_options)
    app.router.add_delete("/whip/{resource}", _whip_delete)
    app.router.add_patch("/whip/{resource}", _whip_patch)
    app.router.add_get("/twilio", _twilio)
    app.router.add_get("/pcm", _pcm)
    app.on_shutdown.append(_close_ingest)
    return metrics
