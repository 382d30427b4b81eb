"""onnxruntime execution providers: TensorRT -> CUDA -> CPU, with the options that matter. Torch-free.

``resolve_providers`` turns short names ("tensorrt", "cuda", "cpu") into onnxruntime's
``(name, options)`` list, dropping (with a warning) those this onnxruntime build does not have.
``session_options`` builds the CPU thread settings. After the session is built, ``check_fallback``
compares what was asked with ``session.get_providers()``: onnxruntime silently drops a provider whose
libraries fail to load (e.g. TensorRT listed but ``libnvinfer`` missing).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

SHORT_TO_ORT = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
ORT_TO_SHORT = {v: k for k, v in SHORT_TO_ORT.items()}


class ProviderFallbackWarning(RuntimeWarning):
    """A requested execution provider is not the one that runs."""


@dataclass(frozen=True)
class ShapeProfile:
    """TensorRT optimisation profile for the dynamic axes: batch and samples at 16 kHz.

    TensorRT builds one engine per profile; inputs outside [min, max] fail, and without a profile every
    new shape rebuilds the engine (seconds to minutes).
    """

    batch: tuple[int, int, int] = (1, 8, 64)
    """min / opt / max batch size."""
    samples16: tuple[int, int, int] = (16_000, 160_000, 160_000)
    """min / opt / max samples at 16 kHz (the monitor's window: min_seconds .. window_seconds)."""
    rate_ratio: int = 3

    def __post_init__(self) -> None:
        for name, (lo, opt, hi) in (("batch", self.batch), ("samples16", self.samples16)):
            if not 1 <= lo <= opt <= hi:
                raise ValueError(f"profile {name} must satisfy 1 <= min <= opt <= max, got {(lo, opt, hi)}")

    def shapes(self, inputs: Sequence[str], which: int) -> str:
        """onnxruntime's shape string, e.g. ``wave16:1x16000,wave48:1x48000``; ``which`` 0=min 1=opt 2=max."""
        parts = []
        for name in inputs:
            n = self.samples16[which] * (self.rate_ratio if name == "wave48" else 1)
            parts.append(f"{name}:{self.batch[which]}x{n}")
        return ",".join(parts)


def normalise_names(providers: Sequence[str]) -> list[str]:
    """Map short names (case-insensitive) or full onnxruntime names to full names, validating them."""
    if isinstance(providers, str):
        providers = (providers,)
    out = []
    for p in providers:
        full = SHORT_TO_ORT.get(p.lower(), p)
        if full not in ORT_TO_SHORT:
            raise ValueError(f"unknown execution provider {p!r}; choose from {', '.join(SHORT_TO_ORT)}")
        if full not in out:
            out.append(full)
    if not out:
        raise ValueError("give at least one execution provider")
    return out


def default_threads() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None, spinning: bool = False) -> ort.SessionOptions:
    """Explicit CPU threading: ``threads`` intra-op threads (default: all usable cores), one inter-op thread.

    Spinning (busy-waiting for work between ops) is off by default: it burns CPU that a monitor sharing
    the machine with other processes needs, for a few percent of latency.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    flag = "1" if spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", flag)
    so.add_session_config_entry("session.inter_op.allow_spinning", flag)
    return so


def provider_options(
    name: str,
    *,
    inputs: Sequence[str],
    profile: ShapeProfile,
    fp16: bool = False,
    trt_cache_dir: str | Path | None = None,
    device_id: int = 0,
) -> dict[str, Any]:
    """Options for one provider (full onnxruntime name)."""
    if name == "TensorrtExecutionProvider":
        opts: dict[str, Any] = {
            "device_id": device_id,
            "trt_fp16_enable": bool(fp16),
            "trt_profile_min_shapes": profile.shapes(inputs, 0),
            "trt_profile_opt_shapes": profile.shapes(inputs, 1),
            "trt_profile_max_shapes": profile.shapes(inputs, 2),
            "trt_max_workspace_size": 4 << 30,
        }
        if trt_cache_dir is not None:
            cache = Path(trt_cache_dir)
            cache.mkdir(parents=True, exist_ok=True)
            opts.update(
                trt_engine_cache_enable=True,
                trt_engine_cache_path=str(cache),
                trt_timing_cache_enable=True,
                trt_timing_cache_path=str(cache),
            )
        return opts
    if name == "CUDAExecutionProvider":
        return {"device_id": device_id, "cudnn_conv_algo_search": "HEURISTIC"}
    return {}


def resolve_providers(
    requested: Sequence[str],
    *,
    inputs: Sequence[str],
    profile: ShapeProfile,
    fp16: bool = False,
    trt_cache_dir: str | Path | None = None,
    device_id: int = 0,
    available: Sequence[str] | None = None,
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """``(name, options)`` for each requested provider this onnxruntime build has, in order, and the
    short names of the requested ones it lacks.

    CPU is always appended last: it is the fallback for nodes the others cannot run.
    """
    names = normalise_names(requested)
    have = set(ort.get_available_providers() if available is None else available)
    out, missing = [], []
    for n in names:
        if n not in have:
            missing.append(ORT_TO_SHORT[n])
            continue
        opts = provider_options(
            n, inputs=inputs, profile=profile, fp16=fp16, trt_cache_dir=trt_cache_dir, device_id=device_id
        )
        out.append((n, opts))
    if not any(n == "CPUExecutionProvider" for n, _ in out):
        out.append(("CPUExecutionProvider", {}))
    return out, missing


def check_fallback(
    requested: Sequence[str], session: ort.InferenceSession, missing: Sequence[str] = ()
) -> str:
    """Short name of the provider that really runs the graph; warn when it is not the first requested.

    ``missing``: requested providers this onnxruntime build lacks (from ``resolve_providers``), named in
    the warning.
    """
    active = session.get_providers()
    running = ORT_TO_SHORT.get(active[0], active[0]) if active else "cpu"
    first = ORT_TO_SHORT[normalise_names(requested)[0]]
    if running != first:
        why = ""
        if missing:
            why = f"; not in this onnxruntime build: {', '.join(missing)}"
            if any(m != "cpu" for m in missing):
                why += " (install onnxruntime-gpu in place of onnxruntime: see docs/RUNTIME.md)"
        else:
            why = "; its libraries failed to load (see onnxruntime's log)"
        warnings.warn(
            f"requested {first} but the session runs on {running}{why}",
            ProviderFallbackWarning,
            stacklevel=3,
        )
    return running
