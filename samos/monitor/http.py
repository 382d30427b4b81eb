"""The monitor's HTTP face (aiohttp): WebRTC signalling, the publish and overlay pages, /metrics.

Routes:

- ``POST /offer`` -- body ``{"sdp", "type": "offer"[, "name", "token"]}`` (``application/json``),
  answered with ``{"sdp", "type": "answer", "name"}`` as in aiortc's server example. The stream name
  comes from ``?name=`` or the body's ``name``, else ``webrtc``; the monitor suffixes a name already
  in use with ``-2``, ``-3`` ... (the answer's ``name`` is the stream name to subscribe to). The
  publisher's token (when ``cfg.auth.token`` is set) is ``Authorization: Bearer T``, the body's
  ``token`` or ``?token=``.
  Errors are ``{"error": "..."}`` with 400 (bad offer), 401 (token), 403 (a browser page of another
  origin, unless listed in ``cfg.http.allowed_origins``), 413 (body too large), 415 (not JSON),
  503 (too many peers).
- ``GET /`` publish page, ``GET /overlay`` overlay page, ``GET /console`` the operator's console,
  ``GET /static/...`` their scripts.
- ``GET /api/streams`` -- ``{"streams": [state, ...], "time", "threshold", "history_minutes"}``: every
  live stream, then the recently ended ones (samos.monitor.history); ``GET
  /api/streams/{name}/history?since=SEQ`` -- ``{"stream", "messages": [...]}``: the stream's kept
  ``score`` and ``alert`` messages with ``seq > SEQ`` (default: all), oldest first. Both need the
  subscribers' token when one is set (``Authorization: Bearer T`` or ``?token=``): 401 otherwise;
  404 for an unknown stream, 400 for a bad ``since``.
- ``GET /config.json`` -- ``{"ws_url", "auth_required", ...}``: where the pages find the websocket.
- ``GET /metrics`` -- Prometheus text (the monitor's registry plus the signalling counters).
- ``GET /healthz`` -- ``{"status": "ok", "peers": n}``.
- ``POST /whip``, ``GET /twilio``, ``GET /pcm`` -- WHIP publishers and telephony media websockets
  (``samos.monitor.ingest_http``, docs/INGEST.md).

On shutdown every peer connection is closed. Tokens never reach the logs: the access loggers of
aiohttp and websockets get a :class:`~samos.monitor.security.RedactSecrets` filter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from samos import __version__
from samos.monitor.config import MonitorConfig
from samos.monitor.schema import clean, encode
from samos.monitor.security import install_redaction, origin_allowed, token_ok
from samos.monitor.sources import handoff
from samos.monitor.sources.webrtc import OfferError, WebRTCOptions, WebRTCSource, accept_offer

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_NAME = "webrtc"
"""Stream name of a publisher that gives none (the monitor suffixes ``-2``, ``-3`` ...)."""
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""Stream names: 1-64 characters, letters, digits, ``.``, ``_``, ``-`` (not first)."""


class MonitorLike(Protocol):
    """What the HTTP app needs from :class:`samos.monitor.app.Monitor`."""

    async def add_source(self, source: Any) -> str:
        """Start a stream for ``source``; returns its unique stream name."""
        ...


@dataclass(frozen=True)
class SignallingLimits:
    """Limits of the ``/offer`` endpoint.

    ``max_peers``: WebRTC publishers connected at once (further offers get 503).
    ``max_body_bytes``: largest accepted request body (a browser's offer is 3-10 KB).
    ``webrtc``: timeouts and buffering of each WebRTC source.
    """

    max_peers: int = 32
    max_body_bytes: int = 64 * 1024
    webrtc: WebRTCOptions = field(default_factory=WebRTCOptions)

    @classmethod
    def from_config(cls, http: Any) -> SignallingLimits:
        """Limits from the monitor's ``cfg.http`` section, for the fields it has (``max_peers``,
        ``max_body_bytes``, ``webrtc_connect_timeout``, ``webrtc_inactivity_timeout``,
        ``webrtc_buffer_seconds``, ``webrtc_batch_seconds``); the defaults above for the others."""
        top = {
            k: getattr(http, k) for k in ("max_peers", "max_body_bytes") if getattr(http, k, None) is not None
        }
        webrtc = {
            k: getattr(http, f"webrtc_{k}")
            for k in ("connect_timeout", "inactivity_timeout", "buffer_seconds", "batch_seconds")
            if getattr(http, f"webrtc_{k}", None) is not None
        }
        return cls(**top, webrtc=WebRTCOptions(**webrtc))

    def __post_init__(self) -> None:
        if self.max_peers < 1:
            raise ValueError(f"max_peers must be >= 1, got {self.max_peers}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")


class _SignallingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.peers = Gauge("samos_webrtc_peers", "WebRTC publishers connected now", registry=self.registry)
        self.offers = Counter(
            "samos_webrtc_offers_total", "SDP offers by result", ["result"], registry=self.registry
        )


class Peers:
    """The live WebRTC sources: a slot count for ``max_peers`` and one watcher task per peer that
    closes the peer connection when its stream ends."""

    def __init__(self, max_peers: int, metrics: _SignallingMetrics) -> None:
        self.max_peers = max_peers
        self.metrics = metrics
        self.sources: dict[str, WebRTCSource] = {}
        self._reserved = 0
        self._watchers: set[asyncio.Task[None]] = set()

    def reserve(self) -> bool:
        """Take a slot for an offer being answered; False when all ``max_peers`` are taken."""
        if len(self.sources) + self._reserved >= self.max_peers:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        self._reserved -= 1

    def add(self, source: WebRTCSource) -> None:
        self.sources[source.name] = source
        self.metrics.peers.set(len(self.sources))
        task = asyncio.create_task(self._watch(source), name=f"webrtc-peer:{source.name}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, source: WebRTCSource) -> None:
        try:
            await source.wait_ended()
            await source.close()
        finally:
            if self.sources.get(source.name) is source:
                del self.sources[source.name]
            self.metrics.peers.set(len(self.sources))

    async def close(self, timeout: float = 5.0) -> None:
        """Close every peer connection, then stop the watchers (bounded by ``timeout`` seconds)."""
        sources = list(self.sources.values())
        if sources:
            closing = [asyncio.create_task(s.close(), name=f"webrtc-close-peer:{s.name}") for s in sources]
            _, pending = await asyncio.wait(closing, timeout=timeout)
            for t in pending:
                t.cancel()
        watchers = list(self._watchers)
        for t in watchers:
            t.cancel()
        if watchers:
            await asyncio.wait(watchers, timeout=timeout)
        self.sources.clear()
        self.metrics.peers.set(0)


PEERS = web.AppKey("samos_peers", Peers)
MONITOR = web.AppKey("samos_monitor", MonitorLike)
CONFIG = web.AppKey("samos_config", MonitorConfig)
LIMITS = web.AppKey("samos_limits", SignallingLimits)
SIGNALLING_METRICS = web.AppKey("samos_signalling_metrics", _SignallingMetrics)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _offer(request: web.Request) -> web.Response:
    app = request.app
    cfg, limits, peers = app[CONFIG], app[LIMITS], app[PEERS]
    counter = app[SIGNALLING_METRICS].offers

    def refuse(status: int, message: str, result: str, **headers: str) -> web.Response:
        counter.labels(result=result).inc()
        log.info("POST /offer from %s refused (%d): %s", request.remote, status, message)
        return _error(status, message, **headers)

    origin = request.headers.get("Origin")
    if not origin_allowed(origin, request.host, getattr(cfg.http, "allowed_origins", ()), same_port=True):
        return refuse(403, f"origin {origin!r} may not publish here (see http.allowed_origins)", "forbidden")
    if request.content_type != "application/json":
        return refuse(
            415, f"Content-Type must be application/json, got {request.content_type!r}", "bad_request"
        )
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        return refuse(
            413,
            f"request body too large ({request.content_length} > {limits.max_body_bytes} bytes)",
            "bad_request",
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return refuse(413, f"request body too large (limit {limits.max_body_bytes} bytes)", "bad_request")
    if len(raw) > limits.max_body_bytes:
        return refuse(
            413, f"request body too large ({len(raw)} > {limits.max_body_bytes} bytes)", "bad_request"
        )
    try:
        body = json.loads(raw)
    except ValueError as e:
        return refuse(400, f"body is not valid JSON: {e}", "bad_request")
    if not isinstance(body, dict):
        return refuse(400, 'body must be a JSON object {"sdp": ..., "type": "offer"}', "bad_request")

    token = _bearer(request) or body.get("token") or request.query.get("token")
    if cfg.auth.token is not None and not (isinstance(token, str) and token_ok(token, cfg.auth.token)):
        reason = "missing publisher token" if token is None else "invalid publisher token"
        return refuse(401, reason, "unauthorized", **{"WWW-Authenticate": "Bearer"})

    sdp, sdp_type = body.get("sdp"), body.get("type")
    if not isinstance(sdp, str) or not isinstance(sdp_type, str):
        return refuse(400, "body must hold string fields 'sdp' and 'type'", "bad_request")
    wanted = request.query.get("name") or body.get("name") or None
    if wanted is not None and not (isinstance(wanted, str) and NAME_RE.match(wanted)):
        return refuse(
            400, f"invalid stream name {wanted!r}: use 1-64 letters, digits, '.', '_' or '-'", "bad_request"
        )

    if not peers.reserve():
        return refuse(
            503, f"too many WebRTC publishers (limit {limits.max_peers})", "busy", **{"Retry-After": "5"}
        )
    try:
        try:
            source, answer = await accept_offer(sdp, sdp_type, wanted or DEFAULT_NAME, limits.webrtc)
        except OfferError as e:
            return refuse(400, str(e), "bad_offer")
        try:
            # The monitor makes the name unique (``alice``, ``alice-2`` ...) and returns it.
            name = await app[MONITOR].add_source(source)
        except ValueError as e:
            await source.close()
            return refuse(409, f"the monitor refused the stream: {e}", "refused")
        except BaseException:
            await source.close()
            raise
        source.name = name = str(name or source.name)
        peers.add(source)
    finally:
        peers.release()
    counter.labels(result="accepted").inc()
    log.info("WebRTC publisher %s connected as stream %r", request.remote, name)
    return web.json_response({"sdp": answer.sdp, "type": answer.type, "name": name})


def _viewer_refused(request: web.Request) -> web.Response | None:
    """401 unless the request carries the subscribers' token (when one is configured)."""
    expected = request.app[CONFIG].auth.token
    if expected is None:
        return None
    token = _bearer(request) or request.query.get("token")
    if token is not None and token_ok(token, expected):
        return None
    reason = "missing token" if token is None else "invalid token"
    return _error(401, reason, **{"WWW-Authenticate": "Bearer"})


def _history_of(request: web.Request) -> Any:
    return getattr(request.app[MONITOR], "history", None)


async def _api_streams(request: web.Request) -> web.Response:
    if (refused := _viewer_refused(request)) is not None:
        return refused
    history, cfg = _history_of(request), request.app[CONFIG]
    if history is None:
        return _error(503, "this monitor keeps no history")
    now = time.time()
    body = {
        "streams": history.streams(now),
        "time": now,
        "threshold": cfg.alerts.threshold,
        "history_minutes": cfg.history.minutes,
    }
    return web.Response(
        text=encode(clean(body)), content_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def _api_history(request: web.Request) -> web.Response:
    if (refused := _viewer_refused(request)) is not None:
        return refused
    history = _history_of(request)
    if history is None:
        return _error(503, "this monitor keeps no history")
    name = request.match_info["name"]
    try:
        since = int(request.query.get("since", "-1"))
    except ValueError:
        return _error(400, f"since must be a message seq (an integer), got {request.query.get('since')!r}")
    texts = history.messages(name, since)
    if texts is None:
        return _error(404, f"no stream {name!r} (live or recently ended)")
    # The messages are kept encoded: join them instead of decoding and encoding again.
    body = '{"stream":' + json.dumps(name) + ',"messages":[' + ",".join(texts) + "]}"
    return web.Response(text=body, content_type="application/json", headers={"Cache-Control": "no-store"})


def _page(filename: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / filename, headers={"Cache-Control": "no-cache"})

    return handler


def _ws_address(monitor: Any, cfg: MonitorConfig) -> tuple[str, int] | None:
    """(host, port) the websocket server listens on, or None when it does not run."""
    address = getattr(monitor, "ws_address", None)
    if address:
        return str(address[0]), int(address[1])
    return (cfg.ws.host, cfg.ws.port) if cfg.ws.enabled else None


async def _config_json(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    address = _ws_address(request.app[MONITOR], cfg)
    ws_url = None
    if address is not None:
        host, port = address
        if host in ("", "0.0.0.0", "::"):  # listening everywhere: the host the browser used reaches it
            host = request.url.host or "127.0.0.1"
        # a page served over https (directly or behind a TLS proxy) may only open wss://
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        ws_url = f"{'wss' if secure else 'ws'}://{'[' + host + ']' if ':' in host else host}:{port}/"
    return web.json_response(
        {
            "ws_url": ws_url,
            "auth_required": cfg.auth.token is not None,
            "offer_url": "/offer",
            "window_seconds": cfg.window.window_seconds,
            "hop_seconds": cfg.window.hop_seconds,
            "alert_threshold": cfg.alerts.threshold,
            "version": __version__,
        },
        headers={"Cache-Control": "no-cache"},
    )


def _registry_of(monitor: Any) -> CollectorRegistry | None:
    metrics = getattr(monitor, "metrics", None)
    if isinstance(metrics, CollectorRegistry):
        return metrics
    registry = getattr(metrics, "registry", None)
    return registry if isinstance(registry, CollectorRegistry) else None


async def _metrics(request: web.Request) -> web.Response:
    text = b""
    registry = _registry_of(request.app[MONITOR])
    if registry is not None:
        text += generate_latest(registry)
    text += generate_latest(request.app[SIGNALLING_METRICS].registry)
    from samos.monitor.ingest_http import INGEST_METRICS

    text += generate_latest(request.app[INGEST_METRICS].registry)
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "ok", "peers": len(request.app[PEERS].sources), "version": __version__}
    )


async def _close_peers(app: web.Application) -> None:
    await app[PEERS].close(timeout=app[LIMITS].webrtc.close_timeout)


def build_http_app(
    monitor: MonitorLike, cfg: MonitorConfig, limits: SignallingLimits | None = None
) -> web.Application:
    """The aiohttp application serving signalling, pages and metrics for ``monitor``."""
    limits = limits or SignallingLimits.from_config(cfg.http)
    used = handoff.use(cfg.http.webrtc_handoff, cfg.http.webrtc_conceal, cfg.http.webrtc_batch_seconds)
    log.info(
        "webrtc hand-off: %s; lost Opus packets: %s", used, "concealed" if handoff.concealing() else "silence"
    )
    install_redaction([cfg.auth.token] if cfg.auth.token else [])
    # aiohttp refuses larger bodies itself (413) -- one KiB of slack so our check gives the message.
    app = web.Application(client_max_size=limits.max_body_bytes + 1024)
    metrics = _SignallingMetrics()
    app[MONITOR] = monitor
    app[CONFIG] = cfg
    app[LIMITS] = limits
    app[SIGNALLING_METRICS] = metrics
    app[PEERS] = Peers(limits.max_peers, metrics)
    app.router.add_post("/offer", _offer)
    app.router.add_get("/", _page("publish.html"))
    app.router.add_get("/publish", _page("publish.html"))
    app.router.add_get("/overlay", _page("overlay.html"))
    app.router.add_get("/console", _page("console.html"))
    app.router.add_get("/api/streams", _api_streams)
    app.router.add_get("/api/streams/{name}/history", _api_history)
    app.router.add_get("/config.json", _config_json)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_static("/static", STATIC_DIR, show_index=False)
    from samos.monitor.ingest_http import add_ingest_routes

    add_ingest_routes(app)  # /whip, /twilio, /pcm (docs/INGEST.md)
    app.on_shutdown.append(_close_peers)
    return app
