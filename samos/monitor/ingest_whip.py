"""The WHIP endpoints (RFC 9725): ``POST`` and ``OPTIONS /whip``, ``DELETE`` and ``PATCH /whip/<id>``."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web

from samos.monitor.ingest_common import (
    INGEST_METRICS,
    WHIP_SESSIONS,
    _keys,
    _precheck,
    _presented_token,
    _refuse,
)
from samos.monitor.security import token_ok

# the ingest endpoints' logger keeps its name from before the split (log filters, %(name)s)
log = logging.getLogger("samos.monitor.ingest_http")


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


def _session(request: web.Request, *, ended_ok: bool = False) -> tuple[str, Any] | web.Response:
    """The session that ``request`` names, or the error to answer. ``ended_ok``: a session whose
    stream already ended (the publisher closed its connection first) still counts until deleted."""
    http = _keys()
    cfg = request.app[http.CONFIG]
    token = _presented_token(request)
    if cfg.auth.token is not None and not token_ok(token, cfg.auth.token):
        return _sdp_error(
            request, 401, "missing or invalid token", "unauthorized", **{"WWW-Authenticate": "Bearer"}
        )
    resource = request.match_info["resource"]
    source = request.app[WHIP_SESSIONS].get(resource)
    if source is None or (source.ended and not ended_ok):
        return _sdp_error(request, 404, "no such WHIP session (ended, or never created)", "not_found")
    return resource, source


async def _whip_delete(request: web.Request) -> web.Response:
    # A publisher that stops closes its peer connection and sends DELETE at the same time (browsers
    # do both in one call): the connection's end may reach us first, and the DELETE is still its own.
    found = _session(request, ended_ok=True)
    if isinstance(found, web.Response):
        return found
    resource, source = found
    del request.app[WHIP_SESSIONS][resource]
    request.app[INGEST_METRICS].results.labels("whip", "deleted").inc()
    if not source.ended:  # else it is ending already, and its buffered audio is still scored
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
