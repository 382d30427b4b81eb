"""Backend selection (``--backend`` / ``backend:``) and the triton:// client.

The Triton client runs against a stand-in gRPC server speaking Triton's own protocol (tritonclient's
service definitions) that reads the repository ``samos export --triton`` writes and runs its model with
onnxruntime; a live Triton server is not installable here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from samos.config import ConfigError
from samos.monitor.backends import BackendError, BackendSpec, open_backend, parse_backend
from samos.monitor.config import MonitorConfig, WorkerConfig
from samos.runtime import Calibration, Scorer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from tiny_onnx import make_tiny_onnx  # noqa: E402


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("inprocess", BackendSpec("inprocess")),
        ("ray://127.0.0.1:8000", BackendSpec("ray", "127.0.0.1", 8000, "/samos")),
        ("ray://gpu-box:9000/mos/", BackendSpec("ray", "gpu-box", 9000, "/mos")),
        ("triton://[::1]:8001", BackendSpec("triton", "::1", 8001, "samos")),
        ("triton://triton:8001?model=samos_fp16", BackendSpec("triton", "triton", 8001, "samos_fp16")),
    ],
)
def test_parse_backend(text: str, spec: BackendSpec) -> None:
    assert parse_backend(text) == spec


@pytest.mark.parametrize(
    "text",
    [
        "",
        "local",
        "http://x:1",
        "ray://",
        "ray://host",
        "ray://host:99999",
        "triton://h:1/path",
        "triton://h:1?model=a&x=1",
        "ray://h:1?model=a",
    ],
)
def test_bad_backends_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_backend(text)
    with pytest.raises(ConfigError):
        MonitorConfig(backend=text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_ray_backend_is_a_clear_error() -> None:
    cfg = MonitorConfig(backend=f"ray://127.0.0.1:{_free_port()}")
    with pytest.raises(BackendError, match="samos serve"):
        open_backend(cfg, timeout=2.0)


def test_inprocess_backend_is_the_scorer(tmp_path: Path) -> None:
    model = make_tiny_onnx(tmp_path / "m.onnx")
    s = open_backend(
        MonitorConfig(model=str(model), backend="inprocess", worker=WorkerConfig(providers=("cpu",)))
    )
    assert isinstance(s, Scorer) and s.provider == "cpu"


def test_monitor_cli_rejects_a_bad_backend(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "samos.monitor.cli",
            "--file",
            str(tmp_path / "x.wav"),
            "--backend",
            "grpc://x:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "backend must be inprocess" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------ triton://


class TritonStandIn:
    """Triton's ModelConfig / ModelInfer RPCs for one model folder of a repository (onnxruntime inside)."""

    def __init__(self, folder: Path) -> None:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2

        self.name = folder.name
        self.config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        self.session = ort.InferenceSession(
            str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        self.batches: list[int] = []

    def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        import grpc
        from tritonclient.grpc import service_pb2

        if request.name != self.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{request.name}' is not found"
            )
        return service_pb2.ModelConfigResponse(config=self.config)

    def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        from tritonclient.grpc import service_pb2

        feeds = {}
        for inp, raw in zip(request.inputs, request.raw_input_contents, strict=True):
            assert inp.datatype == "FP32"
            feeds[inp.name] = np.frombuffer(raw, "<f4").reshape(list(inp.shape))
        self.batches.append(len(next(iter(feeds.values()))))
        names = [o.name for o in request.outputs]
        outs = self.session.run(names, feeds)
        resp = service_pb2.ModelInferResponse(model_name=self.name, id=request.id)
        for name, arr in zip(names, outs, strict=True):
            a = np.asarray(arr, "<f4").reshape(-1, 1)  # Triton returns dims [1] per item (reshape in config)
            resp.outputs.add(name=name, datatype="FP32", shape=list(a.shape))
            resp.raw_output_contents.append(a.tobytes())
        return resp


@pytest.fixture
def triton(tmp_path: Path) -> Iterator[tuple[str, TritonStandIn, Path]]:
    pytest.importorskip("tritonclient.grpc", reason="needs the serve extra")
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    from samos.export.triton import write_repository

    model = make_tiny_onnx(tmp_path / "m.onnx", calibration=Calibration(0.8, 0.5))
    folder = write_repository(model, tmp_path / "repo")
    stand_in = TritonStandIn(folder)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))

    class Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
        ModelConfig = stand_in.ModelConfig  # noqa: N815
        ModelInfer = stand_in.ModelInfer  # noqa: N815

    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", stand_in, model
    server.stop(None)


def test_triton_scores_equal_in_process(triton: tuple[str, TritonStandIn, Path]) -> None:
    address, stand_in, model = triton
    remote = open_backend(MonitorConfig(backend=f"triton://{address}"))
    local = Scorer(model, providers=("cpu",), threads=1)
    assert remote.info == local.info and remote.provider == "triton"
    assert remote.info.calibration == Calibration(0.8, 0.5)
    rng = np.random.default_rng(2)
    for b in (1, 4):
        w16 = (rng.standard_normal((b, 16_000)) * 0.1).astype(np.float32)
        w48 = (rng.standard_normal((b, 48_000)) * 0.1).astype(np.float32)
        got, ref = remote.score(w16, w48), local.score(w16, w48)
        assert got.mos.shape == (b,) and np.array_equal(got.mos, ref.mos) and np.array_equal(got.std, ref.std)
    assert stand_in.batches == [1, 4]
    remote.close()


def test_triton_request_building_and_errors(triton: tuple[str, TritonStandIn, Path]) -> None:
    address, _, _ = triton
    cfg = MonitorConfig(backend=f"triton://{address}")
    remote = open_backend(cfg)
    w16, w48 = np.zeros((2, 8000), np.float64), np.zeros((2, 24000), np.float32)
    inputs, outputs = remote.build_request(w16, w48)
    assert [(i.name(), i.shape(), i.datatype()) for i in inputs] == [
        ("wave16", [2, 8000], "FP32"),
        ("wave48", [2, 24000], "FP32"),
    ]
    assert len(inputs[0]._get_content()) == 2 * 8000 * 4  # sent as float32 whatever came in
    assert len(outputs) == 2
    with pytest.raises(ValueError, match="needs wave16"):
        remote.build_request(None, w48)
    with pytest.raises(ValueError, match="NaN"):
        remote.build_request(np.full((1, 10), np.inf, np.float32), np.zeros((1, 30), np.float32))
    with pytest.raises(BackendError, match="unknown model"):
        open_backend(replace(cfg, backend=f"triton://{address}?model=other"))
    remote.close()


def test_unreachable_triton_is_a_clear_error() -> None:
    pytest.importorskip("tritonclient.grpc", reason="needs the serve extra")
    with pytest.raises(BackendError, match="triton://127.0.0.1"):
        open_backend(MonitorConfig(backend=f"triton://127.0.0.1:{_free_port()}"), timeout=2.0)


def test_backend_from_yaml_and_flag(tmp_path: Path) -> None:
    from samos.monitor.cli import add_arguments, build_config
    from samos.monitor.config import load_config

    (tmp_path / "m.yaml").write_text("backend: ray://10.0.0.5:8000\n")
    assert load_config(tmp_path / "m.yaml").backend == "ray://10.0.0.5:8000"
    (tmp_path / "bad.yaml").write_text("backend: ray:/x\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(tmp_path / "bad.yaml")
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = build_config(p.parse_args(["--config", str(tmp_path / "m.yaml"), "--file", "x.wav"]))
    assert cfg.backend == "ray://10.0.0.5:8000"
    flag = ["--config", str(tmp_path / "m.yaml"), "--backend", "triton://t:8001"]
    assert build_config(p.parse_args(flag)).backend == "triton://t:8001"
