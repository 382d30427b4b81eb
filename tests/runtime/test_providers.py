"""Execution providers: names, options, threads, and the fallback on this CPU-only machine."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from samos.runtime import ProviderUnavailableError, Scorer
from samos.runtime.providers import (
    Choice,
    ShapeProfile,
    check_running,
    choose_providers,
    installed_providers,
    normalise_names,
    parse_providers,
    provider_options,
    resolve_providers,
    session_kwargs,
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


def test_installed_providers_need_the_build_and_the_libraries() -> None:
    assert installed_providers(["CPUExecutionProvider"]) == ["cpu"]
    assert installed_providers(ALL, probe_libraries=False) == ["tensorrt", "cuda", "cpu"]
    assert installed_providers(["CUDAExecutionProvider"], probe_libraries=False) == ["cuda", "cpu"]


def test_parse_providers() -> None:
    assert parse_providers(" CUDA, cpu ,") == ("cuda", "cpu")
    assert parse_providers("auto") == ("auto",)
    with pytest.raises(ValueError, match="unknown execution provider 'rocm'; choose from auto, tensorrt"):
        parse_providers("rocm")


def test_auto_asks_for_what_is_installed() -> None:
    c = choose_providers(("auto",), installed=("cuda", "cpu"))
    assert c == Choice(("cuda", "cpu"), True, ("cuda", "cpu"))
    assert choose_providers(installed=("cpu",)).names == ("cpu",), "auto is the default"
    with pytest.raises(ValueError, match="stands alone"):
        choose_providers(("auto", "cpu"), installed=("cpu",))


def test_explicit_provider_that_is_not_installed_is_an_error_naming_what_is() -> None:
    with pytest.raises(ProviderUnavailableError, match=r"cuda is not available here; installed: cpu\b"):
        choose_providers(("cuda",), installed=("cpu",))
    with pytest.raises(ProviderUnavailableError, match="tensorrt is not available here; installed: cuda,"):
        choose_providers(("tensorrt", "cuda", "cpu"), installed=("cuda", "cpu"))
    assert choose_providers(("cuda", "cpu"), installed=("tensorrt", "cuda", "cpu")).names == ("cuda", "cpu")


def test_fallback_skips_with_a_note() -> None:
    c = choose_providers(("tensorrt", "cuda"), fallback=True, installed=("cuda", "cpu"))
    assert c.names == ("cuda",) and not c.auto
    assert c.notes == ("tensorrt is not available (installed: cuda, cpu); skipped",)
    assert choose_providers(("cuda",), fallback=True, installed=("cpu",)).names == ("cpu",)


def test_check_running_refuses_a_provider_that_did_not_load() -> None:
    explicit = Choice(("tensorrt", "cuda"), False, ("tensorrt", "cuda", "cpu"))
    session = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ProviderUnavailableError, match="tensorrt failed to load.*session has cuda, cpu"):
        check_running(explicit, session)
    assert check_running(explicit, session, fallback=True) == "cuda"
    auto = Choice(("tensorrt", "cuda", "cpu"), True, ("tensorrt", "cuda", "cpu"))
    assert check_running(auto, session) == "cuda", "auto takes what loaded, silently"


def test_default_scorer_is_silent_and_says_what_runs(tiny_model: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        s = Scorer(tiny_model, threads=1)
    assert s.auto and s.notes == ()
    assert s.provider == installed_providers()[0]
    assert s.providers[0] == {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}.get(
        s.provider, "TensorrtExecutionProvider"
    )


def test_explicit_gpu_provider_on_a_cpu_machine_is_an_error(tiny_model: Path) -> None:
    if installed_providers() != ["cpu"]:
        pytest.skip("this machine has a GPU provider")
    with pytest.raises(ProviderUnavailableError, match="cuda is not available here; installed: cpu"):
        Scorer(tiny_model, providers=("cuda",), threads=1)
    s = Scorer(tiny_model, providers=("tensorrt", "cuda", "cpu"), threads=1, fallback=True)
    assert s.provider == "cpu" and s.providers == ["CPUExecutionProvider"] and s.threads == 1
    assert [n.split(" ")[0] for n in s.notes] == ["tensorrt", "cuda"]


def test_cpu_requested(tiny_model: Path) -> None:
    s = Scorer(tiny_model, providers=("cpu",), threads=2)
    assert s.provider == "cpu" and s.threads == 2 and not s.auto and s.notes == ()


def test_cpu_alone_leaves_out_the_slow_fusion() -> None:
    assert session_kwargs(["CPUExecutionProvider"]) == {"disabled_optimizers": ["SkipLayerNormFusion"]}
    # a GPU provider (with the CPU provider behind it) keeps every fusion
    assert session_kwargs(["CUDAExecutionProvider", "CPUExecutionProvider"]) == {}
    assert (
        session_kwargs(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]) == {}
    )
