"""The wire format between monitor gateways and ``samos serve``, and the gateway-side client.

Torch-free and Ray-free: a gateway talks plain HTTP/1.1 to the Ray Serve proxy, so it needs only
numpy and the standard library.

Request (``POST {route}``): body = ``wave16`` then ``wave48`` as little-endian float32, row-major;
headers ``X-Samos-Batch`` (B), ``X-Samos-Samples16`` (T, 0 when absent) and ``X-Samos-Samples48``
(3T, 0 when absent). Response: JSON ``{"mos": [B floats], "std": [B floats]}`` (float32 values, exact),
or a status >= 400 with ``{"error": "..."}`` (400: the input was refused, as ``Scorer.score`` refuses it).
``GET {route}/info``: ``{"metadata": {samos.* strings}, "inputs": [...], "provider": "cpu", ...}``.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from samos.runtime.modelinfo import ModelInfo, parse_metadata
from samos.runtime.scorer import ScoreBatch

H_BATCH, H_T16, H_T48 = "X-Samos-Batch", "X-Samos-Samples16", "X-Samos-Samples48"
DEFAULT_ROUTE = "/samos"
MAX_BODY_BYTES = 1 << 30
"""Largest request the deployment accepts (1 GiB: 64 windows of 60 s are ~1 GB)."""


class ServeError(ValueError):
    """The scoring service cannot be reached, or answered with an error."""


class RequestRefused(ServeError):
    """The service refused the input (HTTP 400): bad shapes, NaN, too short, ..."""


@dataclass(frozen=True)
class Request:
    """One decoded request: float32 ``wave16`` ``[B, T]`` and ``wave48`` ``[B, 3T]`` (either may be None)."""

    wave16: np.ndarray | None
    wave48: np.ndarray | None

    @property
    def batch(self) -> int:
        a = self.wave16 if self.wave16 is not None else self.wave48
        return 0 if a is None else int(a.shape[0])

    @property
    def key(self) -> tuple[int, int]:
        """Requests with the same key can be concatenated into one batch."""
        return (
            -1 if self.wave16 is None else int(self.wave16.shape[1]),
            -1 if self.wave48 is None else int(self.wave48.shape[1]),
        )


def _as_2d(x: np.ndarray | None, name: str) -> np.ndarray | None:
    if x is None:
        return None
    a = np.asarray(x)
    if a.dtype.kind != "f":
        raise ValueError(f"{name} must be float audio, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape [batch, samples], got {a.shape}")
    return np.ascontiguousarray(a, dtype="<f4")


def encode_request(wave16: np.ndarray | None, wave48: np.ndarray | None) -> tuple[dict[str, str], bytes]:
    """(headers, body) for one batch; raises ValueError for arrays that are not float ``[B, n]``."""
    w16, w48 = _as_2d(wave16, "wave16"), _as_2d(wave48, "wave48")
    if w16 is None and w48 is None:
        raise ValueError("give wave16 and/or wave48")
    batches = {a.shape[0] for a in (w16, w48) if a is not None}
    if len(batches) != 1:
        raise ValueError(f"wave16 and wave48 hold different batch sizes {sorted(batches)}")
    headers = {
        H_BATCH: str(batches.pop()),
        H_T16: str(0 if w16 is None else w16.shape[1]),
        H_T48: str(0 if w48 is None else w48.shape[1]),
        "Content-Type": "application/octet-stream",
    }
    body = b"".join(a.tobytes() for a in (w16, w48) if a is not None)
    return headers, body


def decode_request(headers: Any, body: bytes) -> Request:
    """Inverse of :func:`encode_request` (``headers``: case-insensitive mapping); ValueError if malformed."""
    try:
        b, t16, t48 = (int(headers.get(h, "")) for h in (H_BATCH, H_T16, H_T48))
    except ValueError:
        raise ValueError(f"headers {H_BATCH}, {H_T16} and {H_T48} must be integers") from None
    if b < 1 or t16 < 0 or t48 < 0 or t16 + t48 == 0:
        raise ValueError(f"bad shape: batch {b}, samples16 {t16}, samples48 {t48}")
    if len(body) != 4 * b * (t16 + t48):
        raise ValueError(
            f"body is {len(body)} bytes; batch {b} x ({t16} + {t48}) float32 needs {4 * b * (t16 + t48)}"
        )
    flat = np.frombuffer(body, dtype="<f4")
    w16 = flat[: b * t16].reshape(b, t16) if t16 else None
    w48 = flat[b * t16 :].reshape(b, t48) if t48 else None
    return Request(w16, w48)


def encode_scores(mos: np.ndarray, std: np.ndarray) -> bytes:
    return json.dumps(
        {
            "mos": [float(v) for v in np.asarray(mos, np.float32)],
            "std": [float(v) for v in np.asarray(std, np.float32)],
        }
    ).encode()


def decode_scores(body: bytes, batch: int) -> ScoreBatch:
    """A JSON score response -> ScoreBatch (float32 ``[batch]``); ServeError when malformed."""
    try:
        data = json.loads(body)
        mos = np.asarray(data["mos"], np.float32)
        std = np.asarray(data["std"], np.float32)
    except (ValueError, KeyError, TypeError) as e:
        raise ServeError(f"malformed score response ({e})") from None
    if mos.shape != (batch,) or std.shape != (batch,):
        raise ServeError(f"score response holds {mos.shape}/{std.shape} values for a batch of {batch}")
    return ScoreBatch(mos, std)


class ServeClient:
    """Scores batches on a ``samos serve`` deployment: ``score`` / ``info`` / ``provider`` as in ``Scorer``.

    Args:
        host, port: the Ray Serve HTTP proxy (what ``samos serve`` prints).
        route: the deployment's route prefix.
        timeout: seconds to wait for one response (connect and read).

    Thread-safe: each thread keeps its own keep-alive connection. Construction fetches ``{route}/info``,
    so an unreachable service fails here with :class:`ServeError`, not at the first window.
    """

    def __init__(self, host: str, port: int, route: str = DEFAULT_ROUTE, timeout: float = 30.0) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.host, self.port, self.timeout = host, port, timeout
        self.route = "/" + route.strip("/")
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._conns_lock = threading.Lock()
        status, body = self._request("GET", self.route + "/info", {}, b"")
        if status != 200:
            raise ServeError(f"{self.url}: GET {self.route}/info answered {status}: {_error_text(body)}")
        try:
            data = json.loads(body)
            meta = {str(k): str(v) for k, v in data["metadata"].items()}
            inputs = tuple(str(i) for i in data["inputs"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ServeError(f"{self.url}: malformed info response ({e})") from None
        self.info: ModelInfo = parse_metadata(meta, inputs=inputs, source=self.url)
        self.provider = f"ray:{data.get('provider', '?')}"
        self.replicas = data.get("replicas")
        self.path = self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ray://{host}:{self.port}{self.route}"

    @property
    def needs(self) -> tuple[str, ...]:
        return self.info.inputs

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """One request on this thread's connection; a stale keep-alive connection is retried once."""
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path, body=body or None, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                conn.close()
                self._local.conn = None
                if attempt or isinstance(e, TimeoutError):
                    raise ServeError(f"{self.url}: {type(e).__name__}: {e}") from None
        raise AssertionError("unreachable")

    def score(self, wave16: np.ndarray | None, wave48: np.ndarray | None = None) -> ScoreBatch:
        """MOS and std of a batch, scored remotely (``wave16`` ``[B, T]``, ``wave48`` ``[B, 3T]``)."""
        headers, body = encode_request(wave16, wave48)
        status, reply = self._request("POST", self.route, headers, body)
        if status == 400:
            raise RequestRefused(_error_text(reply))
        if status != 200:
            raise ServeError(f"{self.url} answered {status}: {_error_text(reply)}")
        return decode_scores(reply, int(headers[H_BATCH]))

    def close(self) -> None:
        with self._conns_lock:
            for c in self._conns:
                c.close()
            self._conns.clear()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"ServeClient({self.url!r}, provider={self.provider!r})"


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:300].decode("utf-8", "replace").strip() or "(empty response)"
