"""onnxruntime execution providers: TensorRT -> CUDA -> CPU, with the options that matter. Torch-free.

Two ways to ask (:func:`choose_providers`):

- ``auto`` (the default): the providers that are installed, best first: TensorRT when this
  onnxruntime build has it *and* ``libnvinfer`` is on the library path, CUDA when the build has it
  and the NVIDIA driver (``libcuda``) is present, then CPU. Nothing is asked for that cannot load,
  so the default path is silent.
- an explicit list (``["cuda"]``, ``["tensorrt", "cuda", "cpu"]``): every provider named must be
  installed, else :class:`ProviderUnavailableError` names what is; with ``fallback=True`` the
  missing ones are skipped and the choice is reported (``Choice.notes``).

``resolve_providers`` turns the chosen names into onnxruntime's ``(name, options)`` list (CPU always
last, for nodes the others cannot run); ``session_options`` builds the CPU thread settings. After the
session is built, :func:`check_running` compares the choice with ``session.get_providers()``:
onnxruntime silently drops a provider whose libraries fail to load.
"""

from __future__ import annotations

import ctypes.util
import functools
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

SHORT_TO_ORT = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
ORT_TO_SHORT = {v: k for k, v in SHORT_TO_ORT.items()}
AUTO = "auto"
DEFAULT_PROVIDERS: tuple[str, ...] = (AUTO,)
"""The default request: whatever is installed, best first."""
GPU_HINT = "install onnxruntime-gpu in place of onnxruntime (see docs/RUNTIME.md)"


class ProviderUnavailableError(ValueError):
    """An explicitly requested execution provider is not installed or does not load."""


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


def add_provider_arguments(parser: Any, default: str | None = None) -> None:
    """``--providers`` and ``--fallback`` on an argparse parser, as every command that builds a Scorer
    takes them (``default``: None leaves the choice to the command's config)."""
    parser.add_argument(
        "--providers",
        default=default,
        help="auto (default: what is installed, best first) or a comma-separated list of providers that "
        "must be installed: tensorrt,cuda,cpu",
    )
    parser.add_argument(
        "--fallback",
        action="store_true",
        help="skip listed providers that are not installed (a note says which one runs) instead of refusing",
    )


def normalise_names(providers: Sequence[str]) -> list[str]:
    """Map short names (case-insensitive) or full onnxruntime names to full names, validating them."""
    if isinstance(providers, str):
        providers = (providers,)
    out = []
    for p in providers:
        full = SHORT_TO_ORT.get(p.lower(), p)
        if full not in ORT_TO_SHORT:
            raise ValueError(
                f"unknown execution provider {p!r}; choose from {AUTO}, {', '.join(SHORT_TO_ORT)}"
            )
        if full not in out:
            out.append(full)
    if not out:
        raise ValueError("give at least one execution provider")
    return out


def parse_providers(text: str) -> tuple[str, ...]:
    """``"cuda,cpu"`` -> ``("cuda", "cpu")`` (the CLI form), checked: ``auto`` or known names."""
    names = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    if names != (AUTO,):
        normalise_names(names)
    return names


@functools.cache
def _library_present(name: str, pip_package: str | None = None) -> bool:
    """Whether the shared library ``lib<name>.so*`` can be found (system path or a pip wheel's folder)."""
    if pip_package is not None:
        spec = importlib.util.find_spec(pip_package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            if any(Path(folder).glob(f"lib{name}.so*")) or any(Path(folder).glob(f"{name}*.dll")):
                return True
    return ctypes.util.find_library(name) is not None


def installed_providers(available: Sequence[str] | None = None, probe_libraries: bool = True) -> list[str]:
    """Short names of the providers that can run here, best first (always ends with ``cpu``).

    ``available``: onnxruntime's compiled-in list (default: ``ort.get_available_providers()``). A GPU
    build lists TensorRT and CUDA whether or not their libraries exist; with ``probe_libraries`` a
    provider counts only when its library is found too (``libnvinfer``, the driver's ``libcuda``).
    """
    have = set(ort.get_available_providers() if available is None else available)
    out = []
    if "TensorrtExecutionProvider" in have and (
        not probe_libraries or _library_present("nvinfer", "tensorrt_libs")
    ):
        out.append("tensorrt")
    if "CUDAExecutionProvider" in have and (not probe_libraries or _library_present("cuda")):
        out.append("cuda")
    return [*out, "cpu"]


@dataclass(frozen=True)
class Choice:
    """The providers to build a session with (short names, in order) and how they were chosen."""

    names: tuple[str, ...]
    auto: bool
    """Chosen by ``auto`` (what is installed) rather than named by the caller."""
    installed: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())
    """With ``fallback``: one line per requested provider that was skipped."""


def choose_providers(
    requested: Sequence[str] = DEFAULT_PROVIDERS,
    *,
    fallback: bool = False,
    installed: Sequence[str] | None = None,
) -> Choice:
    """Which providers to ask onnxruntime for.

    ``requested``: ``("auto",)`` or short/full names in order of preference. Every explicitly named
    provider must be in ``installed`` (default: :func:`installed_providers`); otherwise
    ProviderUnavailableError names the installed ones, unless ``fallback`` skips it (with a note).
    """
    if isinstance(requested, str):
        requested = (requested,)
    inst = tuple(installed_providers() if installed is None else installed)
    if [r.lower() for r in requested] == [AUTO]:
        return Choice(inst, True, inst)
    if any(r.lower() == AUTO for r in requested):
        raise ValueError(f"{AUTO!r} stands alone: give it or a list of providers, not both")
    names = [ORT_TO_SHORT[n] for n in normalise_names(requested)]
    missing = [n for n in names if n not in inst]
    if missing and not fallback:
        hint = f"; {GPU_HINT}" if any(m != "cpu" for m in missing) and inst == ("cpu",) else ""
        raise ProviderUnavailableError(
            f"execution provider {', '.join(missing)} is not available here; installed: "
            f"{', '.join(inst)} (ask for one of these, or {AUTO}, or allow --fallback){hint}"
        )
    kept = tuple(n for n in names if n in inst) or ("cpu",)
    notes = tuple(f"{m} is not available (installed: {', '.join(inst)}); skipped" for m in missing)
    return Choice(kept, False, inst, notes)


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


CPU_DISABLED_OPTIMIZERS: tuple[str, ...] = ("SkipLayerNormFusion",)
"""onnxruntime graph optimisers left out of sessions that run on the CPU provider alone.

Its fused ``SkipLayerNormalization`` (residual Add + LayerNormalization in one kernel) ran the default
model's incremental head (7 transformer layers, width 200, 200 frames) 13-16% slower on one CPU
thread than the two nodes it replaces, in float32 and int8 alike (onnxruntime 1.32; ``python
scripts/ort_fusion_check.py``, both sessions alternated in one run). Other providers keep it: fused
kernels are what GPUs need. An optimiser name that a later onnxruntime lacks is ignored."""


def session_kwargs(providers: Sequence[str]) -> dict[str, Any]:
    """Extra ``InferenceSession`` arguments for these (full onnxruntime) provider names: the CPU
    provider alone leaves out :data:`CPU_DISABLED_OPTIMIZERS`."""
    if list(providers) == ["CPUExecutionProvider"]:
        return {"disabled_optimizers": list(CPU_DISABLED_OPTIMIZERS)}
    return {}


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


def check_running(choice: Choice, session_providers: Sequence[str], *, fallback: bool = False) -> str:
    """Short name of the provider that really runs the graph (the session's first).

    onnxruntime drops a provider whose libraries fail to load without raising: an explicitly
    requested provider that the session lacks is a ProviderUnavailableError (unless ``fallback``).
    """
    active = [ORT_TO_SHORT.get(p, p) for p in session_providers]
    running = active[0] if active else "cpu"
    dropped = [n for n in choice.names if n not in active]
    if dropped and not choice.auto and not fallback:
        raise ProviderUnavailableError(
            f"execution provider {', '.join(dropped)} failed to load (its libraries are missing or do "
            f"not match; see onnxruntime's log); the session has {', '.join(active)} "
            "(ask for one of these, or allow --fallback)"
        )
    return running
