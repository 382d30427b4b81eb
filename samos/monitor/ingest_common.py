"""Shared pieces of the ingest endpoints: limits, metrics, the live calls, the app keys, and the
origin / token / stream-name check and refusal that every ingest request goes through."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, web
from prometheus_client import CollectorRegistry, Counter, Gauge

from samos.monitor.security import origin_allowed, token_ok
from samos.monitor.sources.telephony import CallOptions, WebsocketAudioSource

# the ingest endpoints' logger keeps its name from before the split (log filters, %(name)s)
log = logging.getLogger("samos.monitor.ingest_http")


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
