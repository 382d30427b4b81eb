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

The code: ``ingest_common`` (limits, metrics, the live calls, the app keys, the checks and refusals
every request goes through), ``ingest_telephony`` (``/twilio``, ``/pcm``) and ``ingest_whip``
(``/whip``); this module adds their routes and closes what is left on shutdown.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

# CALLS, INGEST_METRICS, WHIP_SESSIONS, IngestLimits, IngestMetrics: also imported from here
from samos.monitor.ingest_common import (
    CALLS,
    INGEST_METRICS,
    WHIP_SESSIONS,
    Calls,
    IngestLimits,
    IngestMetrics,
    _keys,
)
from samos.monitor.ingest_telephony import _pcm, _twilio
from samos.monitor.ingest_whip import _whip_delete, _whip_options, _whip_patch, _whip_post


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
