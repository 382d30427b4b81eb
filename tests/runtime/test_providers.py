"""Execution providers: names, options, threads, and the fallback on this CPU-only machine."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from samos.runtime import ProviderFallbackWarning, Scorer
from samos.runtime.providers import (
    ShapeProfile,
    normalise_names,
    provider_options,
    resolve_providers,
    session_options,
)

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_names() -> None:
    assert normalise_names(["TensorRT", "cuda", "CPUExecutionProvider"]) == ALL
    assert normalise_names("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown execution provider 'rocm'"):
        normalise_names(["rocm"])
    with pytest.raises(ValueError):
        normalise_names([])


def test_tensorrt_options(tmp_path: Path) -> None:
    profile = ShapeProfile(batch=(1, 8, 64), samples16=(8000, 160_000, 160_000))
    opts = provider_options(
        "TensorrtExecutionProvider",
        inputs=("wave16", "wave48"),
        profile=profile,
        fp16=True,
        trt_cache_dir=tmp_path / "trt",
    )
    assert opts["trt_fp16_enable"] is True
    assert opts["trt_engine_cache_enable"] and opts["trt_timing_cache_enable"]
    assert opts["trt_engine_cache_path"] == str(tmp_path / "trt") and (tmp_path / "trt").is_dir()
    assert opts["trt_profile_min_shapes"] == "wave16:1x8000,wave48:1x24000"
    assert opts["trt_profile_opt_shapes"] == "wave16:8x160000,wave48:8x480000"
    assert opts["trt_profile_max_shapes"] == "wave16:64x160000,wave48:64x480000"
    only48 = provider_options("TensorrtExecutionProvider", inputs=("wave48",), profile=profile)
    assert only48["trt_profile_max_shapes"] == "wave48:64x480000"
    assert "trt_engine_cache_enable" not in only48


def test_cuda_and_cpu_options() -> None:
    p = ShapeProfile()
    assert provider_options("CUDAExecutionProvider", inputs=("wave16",), profile=p, device_id=1) == {
        "device_id": 1,
        "cudnn_conv_algo_search": "HEURISTIC",
    }
    assert provider_options("CPUExecutionProvider", inputs=("wave16",), profile=p) == {}


def test_profile_validation() -> None:
    with pytest.raises(ValueError, match="min <= opt <= max"):
        ShapeProfile(batch=(4, 2, 8))


def test_resolve_drops_what_the_build_lacks() -> None:
    plist, missing = resolve_providers(
        ["tensorrt", "cuda", "cpu"],
        inputs=("wave16",),
        profile=ShapeProfile(),
        available=["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert [n for n, _ in plist] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert missing == ["tensorrt"]
    plist, _ = resolve_providers(["cuda"], inputs=("wave16",), profile=ShapeProfile(), available=ALL)
    assert [n for n, _ in plist] == ["CUDAExecutionProvider", "CPUExecutionProvider"], (
        "CPU is always the last resort"
    )


def test_session_options_threads() -> None:
    so = session_options(3)
    assert so.intra_op_num_threads == 3 and so.inter_op_num_threads == 1
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert session_options().intra_op_num_threads >= 1
    with pytest.raises(ValueError):
        session_options(0)


def test_tensorrt_requested_on_cpu_machine_falls_back_with_warning(tiny_model: Path) -> None:
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has TensorRT")
    with pytest.warns(ProviderFallbackWarning, match="requested tensorrt but the session runs on cpu"):
        s = Scorer(tiny_model, providers=("tensorrt", "cuda", "cpu"), threads=1)
    assert s.provider == "cpu"
    assert s.providers == ["CPUExecutionProvider"]
    assert s.threads == 1


def test_cpu_requested_gives_no_warning(tiny_model: Path, recwarn: pytest.WarningsRecorder) -> None:
    s = Scorer(tiny_model, providers=("cpu",), threads=2)
    assert s.provider == "cpu" and s.threads == 2
    assert not [w for w in recwarn if issubclass(w.category, ProviderFallbackWarning)]
