"""``samos export --triton DIR``: a Triton Inference Server model repository for a samos ONNX model.

Layout (Triton's): ``DIR/NAME/config.pbtxt`` and ``DIR/NAME/1/model.onnx``. The configuration uses
the ONNX Runtime backend with dynamic batching, the TensorRT accelerator (with a shape profile that
admits the model's windows, engine and timing caches) and carries the model's ``samos.*`` metadata as
model parameters, so that the ``triton://`` monitor backend can read the calibration and windows from
the server. Torch-free (needs ``onnx`` to read the file's metadata).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from samos.runtime.modelinfo import (
    INPUT_WAVE16,
    INPUT_WAVE48,
    OUTPUT_MOS,
    OUTPUT_STD,
    ModelInfo,
    parse_metadata,
)

PRECISIONS = ("FP32", "FP16")


class TritonExportError(ValueError):
    """The Triton repository cannot be written as asked."""


@dataclass(frozen=True)
class TritonSettings:
    """The served model's knobs.

    ``max_batch``: largest batch Triton forms (and the TensorRT profile's max batch);
    ``max_queue_delay_us``: how long the dynamic batcher waits to fill a batch;
    ``max_seconds``: longest window the TensorRT profile admits (default: the model's window);
    ``precision``: TensorRT engine precision, ``FP32`` or ``FP16``; ``gpu``: instances on GPUs
    (with TensorRT) or on CPUs (no accelerator); ``instances``: model instances per device.
    """

    name: str = "samos"
    max_batch: int = 16
    max_queue_delay_us: int = 2000
    max_seconds: float | None = None
    precision: str = "FP16"
    gpu: bool = True
    instances: int = 1
    trt_cache_dir: str = "/tmp/samos-trt-cache"

    def __post_init__(self) -> None:
        if (
            not self.name
            or not all(c.isalnum() or c in "-_." for c in self.name)
            or self.name.startswith(".")
        ):
            raise TritonExportError(f"model name must be letters, digits, '-', '_' or '.', got {self.name!r}")
        if not 1 <= self.max_batch <= 4096:
            raise TritonExportError(f"max_batch must be in [1, 4096], got {self.max_batch}")
        if self.max_queue_delay_us < 0:
            raise TritonExportError("max_queue_delay_us must be >= 0")
        if self.precision not in PRECISIONS:
            raise TritonExportError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.instances < 1:
            raise TritonExportError("instances must be >= 1")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise TritonExportError("max_seconds must be > 0")


def read_model(path: Path) -> tuple[ModelInfo, dict[str, str]]:
    """(parsed info, raw samos.* metadata) of an ONNX file; TritonExportError when it is not a samos model."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError, OSError ...
        raise TritonExportError(f"{path}: not a readable ONNX file ({e})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    names = {i.name for i in proto.graph.input} - {t.name for t in proto.graph.initializer}
    inputs = tuple(n for n in (INPUT_WAVE16, INPUT_WAVE48) if n in names)
    outputs = {o.name for o in proto.graph.output}
    if not inputs or not {OUTPUT_MOS, OUTPUT_STD} <= outputs:
        raise TritonExportError(
            f"{path}: inputs {sorted(names)} / outputs {sorted(outputs)} are not a samos model's"
        )
    return parse_metadata(meta, inputs=inputs, source=str(path)), {
        k: v for k, v in meta.items() if k.startswith("samos.")
    }


def pbtxt_string(s: str) -> str:
    """``s`` as a quoted protobuf text-format string (non-ASCII bytes octal-escaped)."""
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _shapes(info: ModelInfo, batch: int, seconds: float) -> str:
    t16 = int(round(seconds * info.ssl_rate))
    dims = {INPUT_WAVE16: t16, INPUT_WAVE48: t16 * info.rate_ratio}
    return ",".join(f"{n}:{batch}x{dims[n]}" for n in info.inputs)


def triton_config(info: ModelInfo, meta: dict[str, str], s: TritonSettings) -> str:
    """The config.pbtxt text for a samos model (``meta``: its raw ``samos.*`` metadata)."""
    max_s = max(s.max_seconds or info.window_seconds, info.window_seconds)
    opt_batch = min(8, s.max_batch)
    preferred = sorted({b for b in (4, 8, s.max_batch) if b <= s.max_batch})
    lines = [
        f"name: {pbtxt_string(s.name)}",
        'backend: "onnxruntime"',
        f"max_batch_size: {s.max_batch}",
        "",
        "# [batch, samples] float32 audio: wave16 at 16 kHz, wave48 (3x as long) at 48 kHz.",
    ]
    for name in info.inputs:
        lines.append(f'input {{ name: "{name}" data_type: TYPE_FP32 dims: [ -1 ] }}')
    lines.append("# [batch] in MOS units, before calibration (the client applies samos.calibration).")
    for name in (OUTPUT_MOS, OUTPUT_STD):
        lines.append(
            f'output {{ name: "{name}" data_type: TYPE_FP32 dims: [ 1 ] reshape: {{ shape: [ ] }} }}'
        )
    lines += [
        "",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(str(b) for b in preferred)} ]",
        f"  max_queue_delay_microseconds: {s.max_queue_delay_us}",
        "}",
        "",
        f"instance_group [ {{ count: {s.instances} kind: {'KIND_GPU' if s.gpu else 'KIND_CPU'} }} ]",
    ]
    if s.gpu:
        trt = {
            "precision_mode": s.precision,
            "max_workspace_size_bytes": str(1 << 30),
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": s.trt_cache_dir,
            "trt_timing_cache_enable": "1",
            "trt_timing_cache_path": s.trt_cache_dir,
            "trt_profile_min_shapes": _shapes(info, 1, info.min_seconds),
            "trt_profile_opt_shapes": _shapes(info, opt_batch, info.window_seconds),
            "trt_profile_max_shapes": _shapes(info, s.max_batch, max_s),
        }
        lines += [
            "",
            "# TensorRT through ONNX Runtime; nodes TensorRT cannot run fall back to CUDA.",
            "optimization { execution_accelerators {",
            "  gpu_execution_accelerator: [ {",
            '    name: "tensorrt"',
            *(
                f"    parameters {{ key: {pbtxt_string(k)} value: {pbtxt_string(v)} }}"
                for k, v in trt.items()
            ),
            "  } ]",
            "} }",
        ]
    lines += ["", "# The model's samos metadata (read by the triton:// monitor backend)."]
    for k in sorted(meta):
        lines.append(
            f"parameters {{ key: {pbtxt_string(k)} value: {{ string_value: {pbtxt_string(meta[k])} }} }}"
        )
    return "\n".join(lines) + "\n"


def write_repository(model: Path, out_dir: Path, settings: TritonSettings | None = None) -> Path:
    """Write ``out_dir/NAME/{config.pbtxt, 1/model.onnx}`` for ``model``; returns the model folder.

    An existing model folder of the same name is replaced (other models in ``out_dir`` are kept).
    """
    s = settings or TritonSettings()
    model = Path(model)
    info, meta = read_model(model)
    if out_dir.exists() and not out_dir.is_dir():
        raise TritonExportError(f"{out_dir}: exists and is not a folder")
    folder = out_dir / s.name
    text = triton_config(info, meta, s)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "1").mkdir(parents=True)
    shutil.copyfile(model, folder / "1" / "model.onnx")
    (folder / "config.pbtxt").write_text(text)
    return folder
