"""``samos serve``: run the ONNX model as a Ray Serve deployment that monitor gateways share.

Starts a private Ray cluster on 127.0.0.1 (or joins ``--address``), deploys ``--num-replicas``
replicas and prints the address gateways use: ``samos monitor --backend ray://HOST:PORT``.
Runs until SIGINT/SIGTERM, then removes the deployment.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable

from samos.config import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        help="ONNX model every replica can read, or an embedded model: default (the default), compact",
    )
    p.add_argument(
        "--http",
        default="127.0.0.1:8000",
        metavar="HOST:PORT",
        help="Serve HTTP proxy address gateways connect to (default: 127.0.0.1:8000)",
    )
    p.add_argument(
        "--address",
        help="join this Ray cluster (e.g. 10.0.0.5:6379 or auto); default: a private "
        "local cluster on 127.0.0.1",
    )
    p.add_argument("--num-replicas", type=int, default=1, help="replicas (default: 1)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per replica (default: 1)")
    p.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per replica, e.g. 1 or 0.5 (default: 0)")
    p.add_argument("--threads", type=int, help="onnxruntime threads per replica (default: --num-cpus)")
    p.add_argument(
        "--providers", help="comma-separated, each must be installed: tensorrt,cuda,cpu, or auto "
        "(default: cpu; auto, GPU first, with --num-gpus)"
    )
    p.add_argument("--max-batch", type=int, default=16, help="requests per @serve.batch call (default: 16)")
    p.add_argument(
        "--batch-wait-ms", type=float, default=5.0, help="how long a batch waits to fill, ms (default: 5)"
    )
    p.add_argument("--max-seconds", type=float, help="longest window the TensorRT profile admits, seconds")
    p.add_argument("--cluster-cpus", type=int, help="CPUs of the private local cluster (default: all)")


def run(args: argparse.Namespace) -> int:
    from samos.monitor.config import parse_hostport
    from samos.runtime.providers import parse_providers  # names only: replicas may run on other machines

    try:
        from samos.serve.deployment import ServeSettings, init_local_ray, shutdown, start
    except ImportError as e:
        print(f"samos serve: {e}", file=sys.stderr)
        return 2
    try:
        host, port = parse_hostport(args.http, "--http")
        settings = ServeSettings(
            model=args.model,
            num_replicas=args.num_replicas,
            num_cpus=args.num_cpus,
            num_gpus=args.num_gpus,
            threads=args.threads,
            providers=parse_providers(args.providers) if args.providers else None,
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
            max_seconds=args.max_seconds,
        )
        if args.model:  # fail here, not inside a replica that Ray would restart in a loop
            from samos.runtime.scorer import resolve_model_path

            resolve_model_path(args.model)
    except (ConfigError, ValueError) as e:
        print(f"samos serve: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        init_local_ray(num_cpus=args.cluster_cpus, address=args.address)
        url = start(settings, host, port)
    except Exception as e:  # noqa: BLE001 - Ray raises many types (RayServeException, RuntimeError ...)
        print(f"samos serve: the deployment did not start: {e}", file=sys.stderr)
        _quiet_shutdown(shutdown, settings.name)
        return 1
    print(f"samos serve: {settings.num_replicas} replica(s) ready; gateways use --backend {url}", flush=True)
    try:
        stop.wait()
    finally:
        print("samos serve: shutting down", flush=True)
        _quiet_shutdown(shutdown, settings.name)
    return 0


def _quiet_shutdown(shutdown: Callable[[str], None], name: str) -> None:
    try:
        shutdown(name)
    except Exception as e:  # noqa: BLE001
        print(f"samos serve: shutdown: {e}", file=sys.stderr)
