"""The websocket server: fan-out of schema messages to subscribers, never slowed by a slow client.

Each client has a bounded queue (drop-oldest, counted) and its own relay task; ``publish`` never
waits on a socket. Messages published within ``batch_seconds`` go out together: a client that keeps
up (nothing queued, nothing waiting in its socket's write buffer) gets them written in one socket
write; each message is encoded and framed once for all such clients (server frames are not masked
and no extension is negotiated, so every client's frame is the same bytes); only a client that is
behind has them queued for its relay. With 200 subscribers that turns thousands of writes per
second into hundreds (measured with ``samos bench soak``). Messages reach each client in order
either way. A client that lost messages gets ``"dropped_messages": n`` (lost since its previous
message) in its next message.

Subscribing: ``ws://host:port/?streams=a,b`` or a message ``{"type": "subscribe", "streams": [..]}``
at any time (``null``/missing/``["*"]``: all streams). Auth (when a token is configured):
``?token=T`` (a wrong token is refused with HTTP 401 before the upgrade) or, without it in the URL,
a first message ``{"type": "subscribe", "token": T, ...}`` within ``AUTH_TIMEOUT`` seconds (else the
socket is closed with code 1008).

Limits and bad input: at most ``max_clients`` connections (authenticated or still authenticating;
more get HTTP 503); a message larger than ``max_message_bytes`` closes the connection with code
1009; a binary frame, invalid JSON or an unknown message type is answered with an ``error``
message (``{"type": "error", "stream": null, "error": "..."}``) and otherwise ignored. A browser
page from another host (Origin header) is refused with HTTP 403 unless listed in
``allowed_origins``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import SERVER, State

from samos import __version__
from samos.monitor import schema
from samos.monitor.metrics import MonitorMetrics
from samos.monitor.security import install_redaction, origin_allowed, token_ok

__all__ = ["AUTH_TIMEOUT", "CLOSE_POLICY", "Client", "Publisher", "error_message", "token_ok"]

log = logging.getLogger(__name__)
AUTH_TIMEOUT = 5.0
CLOSE_POLICY = 1008


def error_message(text: str) -> dict[str, Any]:
    """A message to one client about its own bad input (not part of any stream)."""
    return {"schema": schema.SCHEMA, "type": "error", "stream": None, "seq": 0, "error": text}


def _parse_streams(value: Any) -> frozenset[str] | None:
    """None = all streams."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [s for s in value.split(",") if s]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError("streams must be a list of stream names")
    return None if not value or "*" in value else frozenset(value)


def text_frame(data: bytes) -> bytes:
    """One unfragmented websocket text frame of UTF-8 ``data`` as a server sends it (unmasked, no
    extension): header and payload."""
    return Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


class Client:
    """One subscriber: a bounded queue of encoded messages and a relay task that drains it."""

    def __init__(
        self, ws: ServerConnection, maxsize: int, streams: frozenset[str] | None, joined: int = 0
    ) -> None:
        self.ws = ws
        self.streams = streams
        self.joined = joined
        """The publisher's message count when this client joined: it gets messages from there on."""
        self.queue: deque[str] = deque()
        self.maxsize = maxsize
        self.ready = asyncio.Event()
        self.dropped_total = 0
        self.dropped_pending = 0
        self.drained = asyncio.Event()
        self.drained.set()
        self.sending = False

    def wants(self, stream: str | None) -> bool:
        return stream is None or self.streams is None or stream in self.streams

    def keeps_up(self) -> bool:
        """Nothing queued or lost, no send in progress and nothing waiting in the socket's write buffer:
        a message may be written now without overtaking or growing anything."""
        if self.queue or self.dropped_pending or self.sending:
            return False
        transport = self.ws.transport
        return (
            self.ws.protocol.state is State.OPEN
            and transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    def write_now(self, frames: bytes) -> None:
        """Write ``frames`` (websocket text frames, :func:`text_frame`, joined) in one go (only when
        :meth:`keeps_up` and :meth:`frames_as_sent`), after anything the protocol still has to send."""
        pending = self.ws.protocol.data_to_send()
        self.ws.transport.write(b"".join([*pending, frames]) if pending else frames)

    def frames_as_sent(self) -> bool:
        """True when this connection sends :func:`text_frame`'s bytes for a text message: the server
        side, no extension, not inside a fragmented message."""
        protocol = self.ws.protocol
        return protocol.side is SERVER and not protocol.extensions and not protocol.expect_continuation_frame

    def offer(self, text: str) -> bool:
        """Queue a message; returns False when the oldest had to be dropped."""
        ok = True
        if len(self.queue) >= self.maxsize:
            self.queue.popleft()
            self.dropped_total += 1
            self.dropped_pending += 1
            ok = False
        self.queue.append(text)
        self.ready.set()
        self.drained.clear()
        return ok

    async def relay(self) -> None:
        """Send queued messages until the socket closes (cancel to stop)."""
        while True:
            while not self.queue:
                self.drained.set()
                self.ready.clear()
                await self.ready.wait()
            text = self.queue.popleft()
            if self.dropped_pending:
                text = f'{{"dropped_messages":{self.dropped_pending},' + text[1:]
                self.dropped_pending = 0
            self.sending = True
            try:
                await self.ws.send(text)
            finally:
                self.sending = False


class Publisher:
    """Fan-out of messages to websocket subscribers; also remembers each live stream's start message."""

    def __init__(
        self,
        metrics: MonitorMetrics,
        client_queue: int = 256,
        max_clients: int = 256,
        token: str | None = None,
        max_message_bytes: int = 64 * 1024,
        allowed_origins: tuple[str, ...] = (),
        batch_seconds: float = 0.1,
    ) -> None:
        self.metrics = metrics
        self.batch_seconds = batch_seconds
        self.client_queue = client_queue
        self.max_clients = max_clients
        self.token = token
        self.max_message_bytes = max_message_bytes
        self.allowed_origins = allowed_origins
        self.clients: set[Client] = set()
        self.connections = 0
        """Open connections, including those still authenticating (bounded by ``max_clients``)."""
        self._starts: dict[str, str] = {}
        self._server: Server | None = None
        self._published = 0
        """Messages published so far (the index of the next one)."""
        self._pending: list[tuple[int, str | None, str]] = []
        """Published, not yet sent: (index, stream, text)."""
        self._flush_at: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ publishing (event loop only)
    def publish(self, msg: dict[str, Any], text: str | None = None) -> None:
        """Queue ``msg`` for every client subscribed to its stream (never blocks); it is sent within
        ``batch_seconds``. ``text``: ``msg`` already encoded (schema.encode), when the caller has it."""
        text = schema.encode(msg) if text is None else text
        stream: str | None = msg.get("stream")
        if stream is not None and msg["type"] == "stream_start":
            self._starts[stream] = text
        elif stream is not None and msg["type"] == "stream_end":
            self._starts.pop(stream, None)
        self._pending.append((self._published, stream, text))
        self._published += 1
        if self.batch_seconds <= 0:
            self.flush()
        elif self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(self.batch_seconds, self.flush)

    def flush(self) -> None:
        """Send what was published since the last flush: written at once to clients that keep up,
        queued for the others."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        pending, self._pending = self._pending, []
        if not pending or not self.clients:
            return
        framed = [text_frame(text.encode()) for _, _, text in pending]  # once for all clients
        everything = b""  # all of them, joined once for the clients that take every stream
        first = pending[0][0]
        for c in self.clients:
            mine: Sequence[int]
            if c.streams is None and c.joined <= first:
                mine = range(len(pending))
            else:
                mine = [k for k, (i, stream, _) in enumerate(pending) if i >= c.joined and c.wants(stream)]
            if not mine:
                continue
            if c.keeps_up() and c.frames_as_sent():
                if len(mine) == len(pending):
                    everything = everything or b"".join(framed)
                    data = everything
                else:
                    data = b"".join([framed[k] for k in mine])
                try:
                    c.write_now(data)
                except Exception as e:  # noqa: BLE001 - a socket closing under us; its handler cleans up
                    log.debug("websocket client %s: write failed (%r)", c.ws.id, e)
                continue
            for k in mine:
                text = pending[k][2]
                if not c.offer(text):
                    self.metrics.ws_dropped.inc()

    @property
    def streams(self) -> list[str]:
        return list(self._starts)

    # ------------------------------------------------------------------------------------ server
    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (port 0: any free one); returns the bound address."""
        install_redaction([self.token] if self.token else [])
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._check_request,
            compression=None,
            max_size=self.max_message_bytes,
            ping_interval=20,
        )
        sock = next(iter(self._server.sockets))
        name = sock.getsockname()
        return str(name[0]), int(name[1])

    async def close(self, drain_timeout: float = 2.0) -> None:
        """Send what is pending, let relays send what is queued (up to ``drain_timeout`` s), then close
        all connections."""
        self.flush()
        waits = [asyncio.create_task(c.drained.wait(), name=f"ws-drain:{c.ws.id}") for c in self.clients]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=drain_timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        if self.token is not None and "token" in query and not token_ok(query["token"][0], self.token):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid token\n")
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.headers.get("Host"), self.allowed_origins, same_port=False):
            log.info("websocket connection from origin %r refused", origin)
            return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if self.connections >= self.max_clients:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many clients\n")
        try:
            _parse_streams(query.get("streams", [None])[0])
        except ValueError as e:
            return connection.respond(HTTPStatus.BAD_REQUEST, f"{e}\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            await self._serve_client(ws)
        finally:
            self.connections -= 1

    async def _serve_client(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "/").query)
        streams = _parse_streams(query.get("streams", [None])[0])
        if self.token is not None and "token" not in query:
            streams = await self._first_message_auth(ws, streams)
            if streams is False:
                return
        client = Client(ws, self.client_queue, streams, joined=self._published)  # type: ignore[arg-type]
        self.clients.add(client)
        self.metrics.clients.set(len(self.clients))
        client.offer(schema.encode(schema.hello(self.streams, f"samos {__version__}")))
        for name, text in self._starts.items():
            if client.wants(name):
                client.offer(text)
        relay = asyncio.create_task(client.relay(), name=f"ws-relay:{ws.id}")
        reader = asyncio.create_task(self._read(ws, client), name=f"ws-read:{ws.id}")
        try:
            await asyncio.wait({relay, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (relay, reader):
                t.cancel()
            await asyncio.gather(relay, reader, return_exceptions=True)
            self.clients.discard(client)
            self.metrics.clients.set(len(self.clients))

    async def _first_message_auth(self, ws: ServerConnection, streams: Any) -> Any:
        try:
            raw = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT)
            msg = json.loads(raw)
            if not isinstance(msg, dict) or not token_ok(msg.get("token"), self.token):
                raise ValueError("invalid token")
            return _parse_streams(msg["streams"]) if "streams" in msg else streams
        except (TimeoutError, ValueError, ConnectionClosed):
            await ws.close(CLOSE_POLICY, "authentication required")
            return False

    async def _read(self, ws: ServerConnection, client: Client) -> None:
        """Apply ``subscribe`` messages, answer anything else with an ``error`` message; return when
        the socket closes."""
        try:
            async for raw in ws:
                try:
                    if isinstance(raw, bytes):
                        raise ValueError("binary messages are not accepted; send JSON text")
                    msg = json.loads(raw)
                    if not isinstance(msg, dict):
                        raise ValueError("a message must be a JSON object")
                    if msg.get("type") != "subscribe":
                        raise ValueError(
                            f"unknown message type {msg.get('type')!r}; only 'subscribe' is accepted"
                        )
                    client.streams = _parse_streams(msg.get("streams"))
                    for name, text in self._starts.items():
                        if client.wants(name):
                            client.offer(text)
                except ValueError as e:  # JSONDecodeError and UnicodeDecodeError included
                    log.info("websocket client %s: bad message ignored (%s)", ws.id, e)
                    client.offer(schema.encode(error_message(str(e)[:200])))
        except ConnectionClosed:
            pass
