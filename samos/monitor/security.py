"""Access control helpers shared by the HTTP app and the websocket server. Torch-free, I/O-free.

- :func:`token_ok`: constant-time comparison of a presented token with the configured one.
- :func:`origin_allowed`: the browser-origin rule for signalling and subscriptions.
- :class:`RedactSecrets`: a logging filter that removes tokens from log records (access logs of
  aiohttp and websockets print the request line, which may carry ``?token=``).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
"""Names of this machine that are treated as one host when comparing origins."""
REDACTED = "<redacted>"
_SECRET_PATTERNS = (
    re.compile(r"(?i)(token=)[^&\s\"']+"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',]+"),
    re.compile(r"(?i)(\"token\"\s*:\s*\")[^\"]*"),
)
ACCESS_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "websockets.server", "websockets")
"""Loggers that may print request lines or headers."""


def token_ok(given: str | None, expected: str | None) -> bool:
    """Constant-time token check (``hmac.compare_digest``); no expected token means open access."""
    if expected is None:
        return True
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def _host_port(netloc: str, default_port: int | None) -> tuple[str, int | None]:
    parts = urlsplit(f"//{netloc}")
    try:
        port = parts.port
    except ValueError:  # "host:notaport" matches no real port
        return "", -1
    host = (parts.hostname or "").lower()
    return ("localhost" if host in LOOPBACK else host), port if port is not None else default_port


def origin_allowed(
    origin: str | None, host: str | None, allowed: Iterable[str] = (), same_port: bool = True
) -> bool:
    """May a browser page from ``origin`` use an endpoint reached as ``host`` (the Host header)?

    No Origin header (not a browser: curl, aiortc, a websocket library) -> True: the token guards
    those. Otherwise the origin must be listed in ``allowed`` (``"*"``: any), or be the same host
    (``same_port``: and port, i.e. the same origin; the websocket server runs on its own port, so it
    compares hosts only). ``localhost``, ``127.0.0.1`` and ``::1`` count as one host.
    """
    if origin is None:
        return True
    allowed = {a.rstrip("/").lower() for a in allowed}
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or not host:
        return False  # "null" (sandboxed frames, file://) and other oddities
    default = 443 if parts.scheme == "https" else 80
    o_host, o_port = _host_port(parts.netloc, default)
    h_host, h_port = _host_port(host, default)
    if not o_host or o_host != h_host:
        return False
    return not same_port or o_port == h_port


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with ``token=...``, ``Bearer ...``, ``"token": "..."`` and each of ``secrets`` hidden."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    for s in secrets:
        if s:
            text = text.replace(s, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites each record's message with :func:`redact` (the token never reaches a log)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is left to logging's own error path
            return True
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_redaction(secrets: Iterable[str] = (), loggers: Iterable[str] = ACCESS_LOGGERS) -> RedactSecrets:
    """Attach one :class:`RedactSecrets` to each of ``loggers`` (idempotent per secret set)."""
    flt = RedactSecrets(secrets)
    for name in loggers:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RedactSecrets)]:
            logger.removeFilter(old)
        logger.addFilter(flt)
    return flt
