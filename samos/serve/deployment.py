"""The samos ONNX model as a Ray Serve deployment, batching requests of all gateways with ``@serve.batch``.

Each replica holds one :class:`samos.runtime.Scorer`. Requests arrive over Serve's HTTP proxy in the
wire format of :mod:`samos.serve.client`; ``@serve.batch`` gathers up to ``max_batch`` requests
(from any number of gateways) for at most ``batch_wait_ms``, concatenates those with the same window
length into one ``Scorer.score`` call and hands each request its own rows back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from samos.serve.client import DEFAULT_ROUTE, MAX_BODY_BYTES, Request, decode_request, encode_scores

log = logging.getLogger(__name__)

try:
    from ray import serve
    from starlette.requests import Request as HttpRequest
    from starlette.responses import JSONResponse, Response
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"samos serve needs Ray Serve: pip install 'samos[serve]' ({e})", name=e.name) from None


@dataclass(frozen=True)
class ServeSettings:
    """How the deployment runs.

    ``model``: ONNX file every replica can read (None: the embedded default model). ``num_cpus`` /
    ``num_gpus``: Ray resources per replica (``num_gpus > 0``: ``auto`` providers, TensorRT/CUDA first
    where installed; ``providers`` must all be installed).
    ``threads``: onnxruntime intra-op threads per replica (default: ``num_cpus``). ``max_batch``: requests
    per ``@serve.batch`` call; ``batch_wait_ms``: how long a batch waits to fill.
    """

    model: str | None = None
    num_replicas: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    threads: int | None = None
    providers: tuple[str, ...] | None = None
    max_batch: int = 16
    batch_wait_ms: float = 5.0
    max_seconds: float | None = None
    name: str = "samos"
    route: str = DEFAULT_ROUTE

    def __post_init__(self) -> None:
        if self.num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, got {self.num_replicas}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError("num_cpus and num_gpus must be >= 0")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if not 0 <= self.batch_wait_ms <= 10_000:
            raise ValueError(f"batch_wait_ms must be in [0, 10000], got {self.batch_wait_ms}")
        if not self.route.startswith("/") or self.route == "/":
            raise ValueError(f"route must look like /name, got {self.route!r}")

    @property
    def provider_order(self) -> tuple[str, ...]:
        if self.providers:
            return self.providers
        return ("auto",) if self.num_gpus > 0 else ("cpu",)  # auto: the GPU providers installed, best first

    @property
    def intra_threads(self) -> int:
        return self.threads or max(1, int(self.num_cpus))


@dataclass(frozen=True)
class _Refused:
    message: str


def score_grouped(scorer: Any, requests: list[Request]) -> list[tuple[np.ndarray, np.ndarray] | _Refused]:
    """Score many requests with as few ``scorer.score`` calls as possible (one per window length).

    A group the scorer refuses (ValueError) is retried request by request, so one bad request fails
    alone. Returns, per request, (mos [B], std [B]) or the refusal.
    """
    out: list[tuple[np.ndarray, np.ndarray] | _Refused | None] = [None] * len(requests)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        groups[r.key].append(i)
    for idx in groups.values():
        try:
            batch = _score(scorer, [requests[i] for i in idx])
        except ValueError as e:
            if len(idx) == 1:
                out[idx[0]] = _Refused(str(e))
                continue
            for i in idx:
                try:
                    out[i] = _score(scorer, [requests[i]])[0]
                except ValueError as e1:
                    out[i] = _Refused(str(e1))
            continue
        for i, res in zip(idx, batch, strict=True):
            out[i] = res
    assert all(o is not None for o in out)
    return out  # type: ignore[return-value]


def _score(scorer: Any, reqs: list[Request]) -> list[tuple[np.ndarray, np.ndarray]]:
    w16 = None if reqs[0].wave16 is None else np.concatenate([r.wave16 for r in reqs])  # type: ignore[misc]
    w48 = None if reqs[0].wave48 is None else np.concatenate([r.wave48 for r in reqs])  # type: ignore[misc]
    res = scorer.score(w16, w48)
    parts, start = [], 0
    for r in reqs:
        parts.append((res.mos[start : start + r.batch], res.std[start : start + r.batch]))
        start += r.batch
    return parts


@serve.deployment(name="samos", max_ongoing_requests=256)
class SamosDeployment:
    """One replica: a Scorer, and the HTTP endpoint ``POST {route}`` / ``GET {route}/info``."""

    def __init__(self, settings: ServeSettings) -> None:
        from samos.runtime.scorer import Scorer

        self.settings = settings
        self.scorer = Scorer(
            settings.model,
            providers=settings.provider_order,
            threads=settings.intra_threads,
            max_batch=max(64, settings.max_batch),
            max_seconds=settings.max_seconds,
        )
        meta = dict(self.scorer.session.get_modelmeta().custom_metadata_map)
        self._info = {
            "metadata": meta,
            "inputs": list(self.scorer.info.inputs),
            "provider": self.scorer.provider,
            "replicas": settings.num_replicas,
            "max_batch": settings.max_batch,
        }
        self.requests = 0
        self.score_calls = 0
        """Requests answered and ``score_batched`` calls made by this replica (their ratio: batching)."""
        self.score_batched.set_max_batch_size(settings.max_batch)  # type: ignore[attr-defined]
        self.score_batched.set_batch_wait_timeout_s(settings.batch_wait_ms / 1000.0)  # type: ignore[attr-defined]
        log.info("samos replica ready: %s on %s", self.scorer.path, self.scorer.provider)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def score_batched(self, requests: list[Request]) -> list[tuple[np.ndarray, np.ndarray] | _Refused]:
        """All requests waiting now, scored together off the replica's event loop."""
        self.score_calls += 1
        self.requests += len(requests)
        return await asyncio.to_thread(score_grouped, self.scorer, requests)

    async def __call__(self, http: HttpRequest) -> Response:
        path = http.url.path.rstrip("/")
        if http.method == "GET" and path.endswith("/info"):
            return JSONResponse({**self._info, "requests": self.requests, "score_calls": self.score_calls})
        if http.method != "POST":
            return JSONResponse({"error": f"{http.method} {path}: use POST to score or GET .../info"}, 405)
        size = int(http.headers.get("content-length") or 0)
        if size > MAX_BODY_BYTES:
            return JSONResponse({"error": f"request of {size} bytes exceeds {MAX_BODY_BYTES}"}, 413)
        try:
            req = decode_request(http.headers, await http.body())
        except ValueError as e:
            return JSONResponse({"error": str(e)}, 400)
        res = await self.score_batched(req)
        if isinstance(res, _Refused):
            return JSONResponse({"error": res.message}, 400)
        return Response(encode_scores(*res), media_type="application/json")


def build_app(settings: ServeSettings) -> Any:
    """The bound Serve application for ``settings`` (pass to ``serve.run``)."""
    actor: dict[str, Any] = {"num_cpus": settings.num_cpus}
    if settings.num_gpus > 0:
        actor["num_gpus"] = settings.num_gpus
    dep = SamosDeployment.options(  # type: ignore[attr-defined]
        num_replicas=settings.num_replicas,
        ray_actor_options=actor,
        max_ongoing_requests=max(256, 2 * settings.max_batch),
    )
    return dep.bind(settings)


def start(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000) -> str:
    """Deploy on the Ray cluster this process is connected to; returns ``ray://HOST:PORT`` for gateways.

    Call after ``ray.init`` (see :func:`init_local_ray`). Blocks until every replica is healthy.
    """
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(settings), name=settings.name, route_prefix=settings.route)
    shown = f"[{host}]" if ":" in host else host
    return f"ray://{shown}:{port}"


def init_local_ray(
    num_cpus: int | None = None, num_gpus: int | None = None, address: str | None = None
) -> None:
    """Connect to the Ray cluster at ``address``, or start a private one on 127.0.0.1 (no dashboard)."""
    import ray

    global _private_cluster
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        _private_cluster = False
        return
    _private_cluster = True
    ray.init(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
        log_to_driver=False,
        configure_logging=True,
    )


_private_cluster = False
"""Whether :func:`init_local_ray` started the cluster this process is connected to."""


def shutdown(name: str = "samos") -> None:
    """Stop the private Ray cluster (everything on it), or on a shared one remove application ``name``."""
    import ray

    if not ray.is_initialized():
        return
    try:
        if not _private_cluster:
            serve.delete(name)
    finally:
        ray.shutdown()


@contextmanager
def local_service(settings: ServeSettings, num_cpus: int | None = None) -> Iterator[Any]:
    """A private Ray cluster on 127.0.0.1 running ``settings``; yields a connected ``ServeClient``.

    Everything is shut down on exit. For benchmarks and tests; operators run ``samos serve``.
    """
    import socket

    from samos.serve.client import ServeClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    init_local_ray(num_cpus=num_cpus)
    client = None
    try:
        start(settings, "127.0.0.1", port)
        client = ServeClient("127.0.0.1", port, route=settings.route)
        yield client
    finally:
        if client is not None:
            client.close()
        shutdown(settings.name)
