"""`samos export --triton`: the generated Triton model repository, parsed with Triton's own config schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from export_helpers import tiny_model

from samos.cli import main
from samos.export.triton import TritonExportError, TritonSettings, read_model, triton_config, write_repository
from samos.model import save_checkpoint
from samos.runtime import Calibration, Scorer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from tiny_onnx import make_tiny_onnx  # noqa: E402

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse(path: Path):  # noqa: ANN201 - a protobuf ModelConfig
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.mark.slow  # a real torch -> ONNX export: ~20 s idle, ~100 s on a loaded 2-core machine
def test_export_cli_writes_a_repository(module_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = save_checkpoint(
        module_tmp / "spec.pt", tiny_model(ssl=False), metadata={"train": {"crop_seconds": 4.0}}
    )
    out, repo = module_tmp / "spec.onnx", module_tmp / "repo"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--triton", str(repo)]) == 0
    assert "Triton model repository" in capsys.readouterr().out
    assert (repo / "samos" / "1" / "model.onnx").read_bytes() == out.read_bytes()
    cfg = parse(repo / "samos" / "config.pbtxt")
    assert (cfg.name, cfg.backend, cfg.max_batch_size) == ("samos", "onnxruntime", 16)
    assert [i.name for i in cfg.input] == ["wave48"]  # a spectrogram-only model takes no wave16
    assert cfg.input[0].data_type == model_config_pb2.TYPE_FP32 and list(cfg.input[0].dims) == [-1]
    assert [o.name for o in cfg.output] == ["mos", "mos_std"]
    for o in cfg.output:  # [batch] outputs: one element per item, reshaped to a scalar
        assert list(o.dims) == [1] and o.HasField("reshape") and list(o.reshape.shape) == []
    assert cfg.HasField("dynamic_batching")
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8, 16]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [(g.count, g.kind) for g in cfg.instance_group] == [
        (1, model_config_pb2.ModelInstanceGroup.KIND_GPU)
    ]
    (acc,) = cfg.optimization.execution_accelerators.gpu_execution_accelerator
    assert acc.name == "tensorrt"
    p = dict(acc.parameters)
    assert p["precision_mode"] == "FP16" and p["trt_engine_cache_enable"] == "1"
    info = Scorer(out, providers=("cpu",), threads=1).info
    assert info.window_seconds == 4.0
    n_min = round(info.min_seconds * 48_000)
    assert p["trt_profile_min_shapes"] == f"wave48:1x{n_min}"
    assert p["trt_profile_opt_shapes"] == "wave48:8x192000"
    assert p["trt_profile_max_shapes"] == "wave48:16x192000"
    _, meta = read_model(out)
    assert {k: v.string_value for k, v in cfg.parameters.items()} == meta


def test_both_inputs_profiles_and_settings(tmp_path: Path) -> None:
    model = make_tiny_onnx(tmp_path / "m.onnx", calibration=Calibration(0.9, 0.2), window_seconds=2.0)
    s = TritonSettings(
        name="mos-v2", max_batch=6, max_seconds=5.0, precision="FP32", instances=2, max_queue_delay_us=500
    )
    folder = write_repository(model, tmp_path / "repo", s)
    assert folder == tmp_path / "repo" / "mos-v2"
    cfg = parse(folder / "config.pbtxt")
    assert cfg.name == "mos-v2" and cfg.max_batch_size == 6
    assert [i.name for i in cfg.input] == ["wave16", "wave48"]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 6]
    assert cfg.instance_group[0].count == 2
    p = dict(cfg.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters)
    assert p["precision_mode"] == "FP32"
    assert p["trt_profile_min_shapes"] == "wave16:1x4000,wave48:1x12000"  # 0.25 s
    assert p["trt_profile_opt_shapes"] == "wave16:6x32000,wave48:6x96000"  # the 2 s window, batch min(8, 6)
    assert p["trt_profile_max_shapes"] == "wave16:6x80000,wave48:6x240000"  # max_seconds 5
    assert json.loads(cfg.parameters["samos.calibration"].string_value) == {"scale": 0.9, "offset": 0.2}
    # a second export replaces the model folder
    write_repository(model, tmp_path / "repo", TritonSettings(name="mos-v2", gpu=False))
    cpu = parse(folder / "config.pbtxt")
    assert cpu.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert not cpu.optimization.execution_accelerators.gpu_execution_accelerator


def test_metadata_with_quotes_and_unicode_round_trips(tmp_path: Path) -> None:
    model = make_tiny_onnx(tmp_path / "m.onnx")
    info, meta = read_model(model)
    meta = {
        **meta,
        "samos.config": json.dumps({"note": 'a "quoted" \\ back\nslash, Größe'}, ensure_ascii=False),
    }
    cfg = text_format.Parse(triton_config(info, meta, TritonSettings()), model_config_pb2.ModelConfig())
    assert {k: v.string_value for k, v in cfg.parameters.items()} == meta


@pytest.mark.parametrize(
    "kw",
    [
        {"name": "../x"},
        {"name": ""},
        {"max_batch": 0},
        {"precision": "INT4"},
        {"instances": 0},
        {"max_seconds": -1.0},
        {"max_queue_delay_us": -5},
    ],
)
def test_bad_settings_are_clear_errors(kw: dict[str, object]) -> None:
    with pytest.raises(TritonExportError):
        TritonSettings(**kw)  # type: ignore[arg-type]


def test_not_a_samos_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(TritonExportError, match="not a readable ONNX"):
        write_repository(bad, tmp_path / "repo")
    plain = make_tiny_onnx(tmp_path / "plain.onnx", output_names=("score", "sd"))
    with pytest.raises(TritonExportError, match="not a samos model"):
        write_repository(plain, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
