"""The gateway <-> deployment wire format and the client's errors (no Ray needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from samos.serve.client import (
    H_BATCH,
    H_T16,
    H_T48,
    RequestRefused,
    ServeClient,
    ServeError,
    decode_request,
    decode_scores,
    encode_request,
    encode_scores,
)


def test_request_round_trip_is_exact() -> None:
    rng = np.random.default_rng(1)
    w16 = rng.standard_normal((3, 100)).astype(np.float32)
    w48 = rng.standard_normal((3, 300)).astype(np.float32)
    headers, body = encode_request(w16, w48)
    assert (headers[H_BATCH], headers[H_T16], headers[H_T48]) == ("3", "100", "300")
    req = decode_request(headers, body)
    assert req.batch == 3 and req.key == (100, 300)
    assert np.array_equal(req.wave16, w16) and np.array_equal(req.wave48, w48)
    only48 = decode_request(*encode_request(None, w48.astype(np.float64)))
    assert only48.wave16 is None and only48.key == (-1, 300) and np.array_equal(only48.wave48, w48)


@pytest.mark.parametrize(
    ("w16", "w48", "match"),
    [
        (np.zeros((2, 10), np.int16), None, "float"),
        (np.zeros(10, np.float32), None, "batch, samples"),
        (np.zeros((2, 10), np.float32), np.zeros((3, 30), np.float32), "different batch"),
        (None, None, "wave16 and/or wave48"),
    ],
)
def test_bad_arrays_are_value_errors(w16: np.ndarray | None, w48: np.ndarray | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_request(w16, w48)


def test_malformed_requests_are_refused() -> None:
    headers, body = encode_request(np.zeros((2, 10), np.float32), None)
    with pytest.raises(ValueError, match="body is"):
        decode_request(headers, body[:-4])
    with pytest.raises(ValueError, match="integers"):
        decode_request({**headers, H_BATCH: "two"}, body)
    with pytest.raises(ValueError, match="bad shape"):
        decode_request({H_BATCH: "1", H_T16: "0", H_T48: "0"}, b"")


def test_scores_round_trip_exactly_in_float32() -> None:
    mos = np.array([1.0000001, 3.1415927, 4.9999995], np.float32)
    std = np.array([0.1, 0.2, 0.3], np.float32)
    out = decode_scores(encode_scores(mos, std), 3)
    assert out.mos.dtype == np.float32 and np.array_equal(out.mos, mos) and np.array_equal(out.std, std)
    with pytest.raises(ServeError, match="batch of 2"):
        decode_scores(encode_scores(mos, std), 2)
    with pytest.raises(ServeError, match="malformed"):
        decode_scores(b"<html>", 3)


class _Handler(BaseHTTPRequestHandler):
    """A stand-in that answers like a deployment: info, then a refusal or a server error."""

    protocol_version = "HTTP/1.1"
    info: dict[str, object] = {}

    def _reply(self, status: int, payload: dict[str, object]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200, self.info) if self.path == "/samos/info" else self._reply(404, {"error": "no route"})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        b = int(self.headers[H_BATCH])
        self._reply(400, {"error": "input too short"}) if b == 1 else self._reply(
            503, {"error": "overloaded"}
        )

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_stub() -> Iterator[tuple[str, int]]:
    from samos.runtime.modelinfo import Calibration, build_metadata

    _Handler.info = {
        "metadata": build_metadata(
            version="0",
            config={},
            ssl_rate=16000,
            spec_rate=48000,
            n_fft=320,
            hop=160,
            weights_sha256="0" * 64,
            calibration=Calibration(),
            min_seconds=0.5,
            window_seconds=4.0,
            precision="fp32",
        ),
        "inputs": ["wave16", "wave48"],
        "provider": "cpu",
    }
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address  # type: ignore[misc]
    srv.shutdown()
    srv.server_close()


def test_client_reads_info_and_maps_errors(http_stub: tuple[str, int]) -> None:
    host, port = http_stub
    c = ServeClient(host, port)
    assert c.provider == "ray:cpu" and c.info.window_seconds == 4.0 and c.path == f"ray://{host}:{port}/samos"
    with pytest.raises(RequestRefused, match="too short"):
        c.score(np.zeros((1, 8000), np.float32), np.zeros((1, 24000), np.float32))
    with pytest.raises(ServeError, match="503.*overloaded"):
        c.score(np.zeros((2, 8000), np.float32), np.zeros((2, 24000), np.float32))
    c.close()
    with pytest.raises(ServeError, match="404"):
        ServeClient(host, port, route="/other")


def test_unreachable_service_fails_at_construction() -> None:
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServeError, match="Connection"):
        ServeClient("127.0.0.1", port, timeout=2.0)
