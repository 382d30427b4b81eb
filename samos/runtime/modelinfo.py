"""The self-description of a samos ONNX model file: metadata keys, parsing and validation.

The export writes these ``metadata_props`` (all strings); the runtime reads them back with
onnxruntime (no ``onnx`` package needed) and refuses files that do not fit. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = "1"
"""Version of the ONNX model-file contract (inputs, outputs, metadata). Bump on incompatible change."""

INPUT_WAVE16 = "wave16"
INPUT_WAVE48 = "wave48"
OUTPUT_MOS = "mos"
OUTPUT_STD = "mos_std"

KEY_FORMAT = "samos.format"
KEY_VERSION = "samos.version"
KEY_CONFIG = "samos.config"
KEY_SSL_RATE = "samos.ssl_rate"
KEY_SPEC_RATE = "samos.spec_rate"
KEY_N_FFT = "samos.n_fft"
KEY_HOP = "samos.hop"
KEY_WEIGHTS_SHA256 = "samos.weights_sha256"
KEY_CALIBRATION = "samos.calibration"
KEY_MIN_SECONDS = "samos.min_seconds"
KEY_WINDOW_SECONDS = "samos.window_seconds"
KEY_PRECISION = "samos.precision"

REQUIRED_KEYS = (
    KEY_FORMAT,
    KEY_VERSION,
    KEY_CONFIG,
    KEY_SSL_RATE,
    KEY_SPEC_RATE,
    KEY_N_FFT,
    KEY_HOP,
    KEY_WEIGHTS_SHA256,
    KEY_CALIBRATION,
    KEY_MIN_SECONDS,
    KEY_WINDOW_SECONDS,
    KEY_PRECISION,
)
PRECISIONS = ("fp32", "fp16")


class ModelFileError(ValueError):
    """A model file that cannot be used: missing, unreadable, truncated or not a samos model."""


@dataclass(frozen=True)
class Calibration:
    """Affine map applied to the model's output: ``mos' = scale * mos + offset``, ``std' = |scale| * std``."""

    scale: float = 1.0
    offset: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"scale": self.scale, "offset": self.offset})


@dataclass(frozen=True)
class ModelInfo:
    """Parsed ``metadata_props`` of a samos ONNX model."""

    format: str
    version: str
    config: dict[str, Any]
    ssl_rate: int
    spec_rate: int
    n_fft: int
    hop: int
    weights_sha256: str
    calibration: Calibration
    min_seconds: float
    window_seconds: float
    precision: str
    inputs: tuple[str, ...] = ()
    """Graph inputs the model takes (``wave16`` and/or ``wave48``)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Other metadata keys, kept verbatim (e.g. a model card's name)."""

    @property
    def min_samples16(self) -> int:
        """Shortest accepted input, in samples at ``ssl_rate``."""
        return int(round(self.min_seconds * self.ssl_rate))

    @property
    def window_samples16(self) -> int:
        """Recommended scoring window, in samples at ``ssl_rate``."""
        return int(round(self.window_seconds * self.ssl_rate))

    @property
    def rate_ratio(self) -> int:
        return self.spec_rate // self.ssl_rate


def build_metadata(
    *,
    version: str,
    config: dict[str, Any],
    ssl_rate: int,
    spec_rate: int,
    n_fft: int,
    hop: int,
    weights_sha256: str,
    calibration: Calibration,
    min_seconds: float,
    window_seconds: float,
    precision: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The metadata mapping (all strings) that the export writes into the ONNX file."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    meta = {
        KEY_FORMAT: FORMAT_VERSION,
        KEY_VERSION: str(version),
        KEY_CONFIG: json.dumps(config, sort_keys=True),
        KEY_SSL_RATE: str(int(ssl_rate)),
        KEY_SPEC_RATE: str(int(spec_rate)),
        KEY_N_FFT: str(int(n_fft)),
        KEY_HOP: str(int(hop)),
        KEY_WEIGHTS_SHA256: weights_sha256,
        KEY_CALIBRATION: calibration.to_json(),
        KEY_MIN_SECONDS: repr(float(min_seconds)),
        KEY_WINDOW_SECONDS: repr(float(window_seconds)),
        KEY_PRECISION: precision,
    }
    for k, v in (extra or {}).items():
        meta[k] = str(v)
    return meta


def parse_metadata(meta: dict[str, str], inputs: tuple[str, ...] = (), source: str = "model") -> ModelInfo:
    """Validate and parse a metadata mapping; raise ModelFileError naming the bad key."""
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if KEY_FORMAT in missing:
        raise ModelFileError(
            f"{source}: not a samos model (no '{KEY_FORMAT}' metadata); export one with `samos export`"
        )
    if meta[KEY_FORMAT] != FORMAT_VERSION:
        raise ModelFileError(
            f"{source}: model file format {meta[KEY_FORMAT]!r} is not supported by this runtime "
            f"(it reads format {FORMAT_VERSION!r}); re-export the model with this samos version"
        )
    if missing:
        raise ModelFileError(f"{source}: metadata is missing {', '.join(missing)}")

    def num(key: str, kind: type) -> Any:
        try:
            value = kind(meta[key])
        except ValueError:
            raise ModelFileError(
                f"{source}: metadata {key}={meta[key]!r} is not a valid {kind.__name__}"
            ) from None
        if not value > 0:
            raise ModelFileError(f"{source}: metadata {key}={meta[key]!r} must be positive")
        return value

    try:
        config = json.loads(meta[KEY_CONFIG])
        cal = json.loads(meta[KEY_CALIBRATION])
        calibration = Calibration(float(cal["scale"]), float(cal["offset"]))
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{source}: bad JSON in samos.config or samos.calibration ({e})") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{source}: samos.config must be a JSON object")
    info = ModelInfo(
        format=meta[KEY_FORMAT],
        version=meta[KEY_VERSION],
        config=config,
        ssl_rate=num(KEY_SSL_RATE, int),
        spec_rate=num(KEY_SPEC_RATE, int),
        n_fft=num(KEY_N_FFT, int),
        hop=num(KEY_HOP, int),
        weights_sha256=meta[KEY_WEIGHTS_SHA256],
        calibration=calibration,
        min_seconds=num(KEY_MIN_SECONDS, float),
        window_seconds=num(KEY_WINDOW_SECONDS, float),
        precision=meta[KEY_PRECISION],
        inputs=inputs,
        extra={k: v for k, v in meta.items() if k not in REQUIRED_KEYS},
    )
    if info.precision not in PRECISIONS:
        raise ModelFileError(
            f"{source}: metadata samos.precision={info.precision!r} is not one of {PRECISIONS}"
        )
    if info.spec_rate % info.ssl_rate:
        raise ModelFileError(
            f"{source}: spec_rate {info.spec_rate} is not a multiple of ssl_rate {info.ssl_rate}"
        )
    if info.window_seconds < info.min_seconds:
        raise ModelFileError(
            f"{source}: window_seconds {info.window_seconds} < min_seconds {info.min_seconds}"
        )
    return info


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
