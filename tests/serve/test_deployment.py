"""The Ray Serve deployment on a private local Ray cluster (127.0.0.1, 2 CPUs, no dashboard).

Two monitor gateway processes feed one deployment over ``--backend ray://``; their scores equal the
in-process backend's. One cluster for the whole module (starting Ray takes 20-40 s on a loaded machine).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("ray.serve")

from samos.runtime import Scorer  # noqa: E402

DEMO_CALL = Path(__file__).resolve().parents[2] / "samos" / "assets" / "demo_call_48k.flac"
from samos.serve.client import Request, RequestRefused, ServeClient  # noqa: E402
from samos.serve.deployment import ServeSettings, init_local_ray, score_grouped, shutdown, start  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _batch(
    rng: np.random.Generator, b: int, seconds: float, level: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    t = int(seconds * 16_000)
    return (rng.standard_normal((b, t)) * level).astype(np.float32), (
        rng.standard_normal((b, 3 * t)) * level
    ).astype(np.float32)


def test_score_grouped_concatenates_by_length_and_isolates_refusals(served_model: Path) -> None:
    scorer = Scorer(served_model, providers=("cpu",), threads=1)
    rng = np.random.default_rng(0)
    reqs = [
        Request(*_batch(rng, 2, 1.0)),
        Request(*_batch(rng, 1, 0.5)),
        Request(*_batch(rng, 3, 1.0)),
        Request(*_batch(rng, 1, 0.1)),
    ]  # the last is shorter than the model's 0.25 s minimum
    out = score_grouped(scorer, reqs)
    for r, o in zip(reqs[:3], out[:3], strict=True):
        ref = scorer.score(r.wave16, r.wave48)
        assert isinstance(o, tuple) and np.array_equal(o[0], ref.mos) and np.array_equal(o[1], ref.std)
    assert "too short" in out[3].message  # type: ignore[union-attr]
    bad = Request(np.full((1, 16_000), np.nan, np.float32), np.zeros((1, 48_000), np.float32))
    mixed = score_grouped(scorer, [reqs[0], bad])  # same length: the group fails, then each alone
    assert isinstance(mixed[0], tuple) and "NaN" in mixed[1].message  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def service(served_model: Path) -> Iterator[tuple[str, int]]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    port = _free_port()
    init_local_ray(num_cpus=2)
    try:
        url = start(
            ServeSettings(model=str(served_model), max_batch=8, batch_wait_ms=20.0), "127.0.0.1", port
        )
        assert url == f"ray://127.0.0.1:{port}"
        yield "127.0.0.1", port
    finally:
        shutdown()


def test_remote_scores_equal_in_process(service: tuple[str, int], served_model: Path) -> None:
    client = ServeClient(*service)
    local = Scorer(served_model, providers=("cpu",), threads=1)
    assert client.info == local.info and client.provider == "ray:cpu"
    rng = np.random.default_rng(3)
    for b, seconds in ((1, 1.0), (5, 2.0), (3, 0.25)):
        w16, w48 = _batch(rng, b, seconds)
        got, ref = client.score(w16, w48), local.score(w16, w48)
        assert np.array_equal(got.mos, ref.mos) and np.array_equal(got.std, ref.std)
    with pytest.raises(RequestRefused, match="too short"):
        client.score(*_batch(rng, 2, 0.1))
    client.close()


def test_concurrent_requests_share_batches(service: tuple[str, int], served_model: Path) -> None:
    import http.client

    client = ServeClient(*service)

    def stats() -> tuple[int, int]:
        c = http.client.HTTPConnection(*service, timeout=30)
        c.request("GET", "/samos/info")
        d = json.loads(c.getresponse().read())
        c.close()
        return int(d["requests"]), int(d["score_calls"])

    r0, c0 = stats()
    rng = np.random.default_rng(4)
    batches = [_batch(rng, 2, 1.0) for _ in range(8)]
    local = Scorer(served_model, providers=("cpu",), threads=1)
    results: list[object] = [None] * 8

    def call(i: int) -> None:
        results[i] = client.score(*batches[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for (w16, w48), got in zip(batches, results, strict=True):
        assert np.array_equal(got.mos, local.score(w16, w48).mos)  # type: ignore[attr-defined]
    r1, c1 = stats()
    assert r1 - r0 == 8
    assert c1 - c0 < 8, "@serve.batch never put two requests in one call"


def _monitor(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "samos.monitor.cli",
            *args,
            "--no-ws",
            "--no-realtime",
            "--window",
            "1",
            "--hop",
            "0.5",
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _scores(log: Path) -> list[tuple[str, int, str, float | None, float | None]]:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return sorted(
        (r["stream"], r["window"], r["status"], r["mos"], r["mos_std"]) for r in rows if r["type"] == "score"
    )


def test_two_gateways_equal_the_in_process_backend(
    service: tuple[str, int], served_model: Path, tmp_path: Path
) -> None:
    demo, rate = sf.read(str(DEMO_CALL), dtype="float32")  # real speech: the monitor's gate scores it
    assert rate == 48_000
    files = []
    for i, (start_s, gain) in enumerate(((2.0, 0.5), (17.0, 2.0))):
        x = demo[int(start_s * rate) : int((start_s + 4) * rate)] * gain
        sf.write(tmp_path / f"call{i}.wav", x, 48_000, subtype="FLOAT")
        files.append(f"call{i}={tmp_path / f'call{i}.wav'}")
    backend = f"ray://{service[0]}:{service[1]}"
    gateways = [
        _monitor(["--backend", backend, "--file", f], tmp_path / f"ray{i}.jsonl") for i, f in enumerate(files)
    ]
    ref = _monitor(
        [
            "--backend",
            "inprocess",
            "--model",
            str(served_model),
            "--providers",
            "cpu",
            "--threads",
            "1",
            *sum((["--file", f] for f in files), []),
        ],
        tmp_path / "local.jsonl",
    )
    outs = []
    for p in [*gateways, ref]:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        outs.append(out.decode())
    assert "on ray:cpu" in outs[0] and "on cpu" in outs[2]  # the start-up line names the backend
    remote = _scores(tmp_path / "ray0.jsonl") + _scores(tmp_path / "ray1.jsonl")
    local = _scores(tmp_path / "local.jsonl")
    assert len(local) >= 2 * 7 and sum(r[2] == "ok" for r in local) >= 10
    assert sorted(remote) == local


def test_stream_benchmark_on_the_ray_backend(
    service: tuple[str, int], served_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`samos bench stream --backend ray://...`: the monitor's benchmark keys, every window delivered."""
    from samos.cli import main

    common = ["--streams", "2", "--seconds", "2", "--window", "1", "--hop", "0.5", "--json"]
    assert main(["bench", "stream", "--backend", f"ray://{service[0]}:{service[1]}", *common]) == 0
    remote = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["bench", "stream", "--backend", "inprocess", "--model", str(served_model), *common]) == 0
    local = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert remote.keys() == local.keys()
    assert (remote["backend"], remote["provider"], local["provider"]) == (
        f"ray://{service[0]}:{service[1]}",
        "ray:cpu",
        "cpu",
    )
    assert remote["windows_delivered"] == remote["windows_expected"] == local["windows_expected"] > 0
    assert main(["bench", "stream", "--backend", "triton://h:1", *common]) == 2
    assert "inprocess, ray or ray://" in capsys.readouterr().out
