"""The self-description of a samos ONNX model file: metadata keys, parsing and validation.

The export writes these ``metadata_props`` (all strings); the runtime reads them back with
onnxruntime (no ``onnx`` package needed) and refuses files that do not fit. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
KEY_INCREMENTAL = "samos.incremental"
"""Only in the incremental pair (samos.runtime.incremental): role and frame geometry, JSON."""
KEY_MEMBERS = "samos.members"
"""Optional: how many models of one architecture the graph mixes (a seed ensemble); absent means 1."""

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
    """The map from the graph's raw output to the reported (calibrated) MOS and std.

    Two kinds, both monotonic (so rankings and SRCC never change):

    * affine (``poly`` empty): ``mos' = scale * mos + offset``, ``std' = |scale| * std``;
    * polynomial (``poly`` = coefficients ``c0, c1, ...``, lowest power first; ``domain`` = the raw
      range it was fitted on, ``[lo, hi]``): inside the domain ``mos' = sum(c_i * mos**i)``; outside
      it the map continues as a straight line with the slope at the nearer end (it never bends back).
      ``std' = slope(mos) * std``, the local slope of the map (delta method). Written to the file as
      ``{"poly": [...], "domain": [lo, hi]}`` with no ``scale``/``offset``, so a runtime that only
      knows affine maps refuses the file instead of silently reporting uncalibrated scores.
      ``scale``/``offset`` must stay 1, 0 with a polynomial (fold them into the coefficients).
    """

    scale: float = 1.0
    offset: float = 0.0
    poly: tuple[float, ...] = ()
    domain: tuple[float, float] | None = None
    method: str = ""
    """How the polynomial was fitted (free text, e.g. "P.1401 monotonic 3rd order"), kept in the file."""

    def __post_init__(self) -> None:
        if not self.poly:
            if self.domain is not None:
                raise ValueError("a calibration domain needs polynomial coefficients")
            return
        if (self.scale, self.offset) != (1.0, 0.0):
            raise ValueError("a polynomial calibration keeps scale 1 and offset 0 (fold them into poly)")
        if self.domain is None or len(self.domain) != 2 or not self.domain[0] < self.domain[1]:
            raise ValueError(
                f"a polynomial calibration needs a domain [lo, hi] with lo < hi, got {self.domain}"
            )
        vals = [*self.poly, *self.domain]
        if not all(math.isfinite(float(v)) for v in vals):
            raise ValueError("calibration coefficients and domain must be finite numbers")
        lo, hi = self.domain
        if self.min_slope() < -1e-9 * max(1.0, float(np.max(np.abs(self._dpoly(np.array([lo, hi])))))):
            raise ValueError("a polynomial calibration must be non-decreasing over its domain")

    def min_slope(self) -> float:
        """The smallest derivative of the polynomial over its domain (exact: ends and stationary points)."""
        if not self.poly:
            return abs(self.scale)
        lo, hi = self.domain  # type: ignore[misc]
        d = np.polynomial.polynomial.polyder(np.asarray(self.poly, dtype=np.float64))
        pts = [lo, hi]
        if len(d) > 1:
            roots = np.polynomial.polynomial.polyroots(np.polynomial.polynomial.polyder(d))
            pts += [float(r.real) for r in np.atleast_1d(roots) if abs(r.imag) < 1e-12 and lo < r.real < hi]
        return float(np.min(np.polynomial.polynomial.polyval(np.array(pts), d)))

    @property
    def is_identity(self) -> bool:
        return not self.poly and (self.scale, self.offset) == (1.0, 0.0)

    def _poly(self, x: np.ndarray) -> np.ndarray:
        return np.polynomial.polynomial.polyval(x, np.asarray(self.poly, dtype=np.float64))

    def _dpoly(self, x: np.ndarray) -> np.ndarray:
        d = np.polynomial.polynomial.polyder(np.asarray(self.poly, dtype=np.float64))
        return np.polynomial.polynomial.polyval(x, d)

    def map_mos(self, mos: np.ndarray) -> np.ndarray:
        """Calibrated MOS for raw MOS values (float64 array of the same shape)."""
        x = np.asarray(mos, dtype=np.float64)
        if not self.poly:
            return self.scale * x + self.offset
        lo, hi = self.domain  # type: ignore[misc]
        xc = np.clip(x, lo, hi)
        y = self._poly(xc)
        slope = self._dpoly(xc)
        return y + slope * (x - xc)

    def slope(self, mos: np.ndarray) -> np.ndarray:
        """|d mos' / d mos| at raw MOS values: the factor applied to the std."""
        x = np.asarray(mos, dtype=np.float64)
        if not self.poly:
            return np.full(x.shape, abs(self.scale))
        lo, hi = self.domain  # type: ignore[misc]
        return np.abs(self._dpoly(np.clip(x, lo, hi)))

    def apply(self, mos: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mos', std')`` as float32 arrays for raw graph outputs ``mos``, ``std`` (same shapes)."""
        m = np.asarray(mos, dtype=np.float32)
        s = np.asarray(std, dtype=np.float32)
        if not self.poly:  # float32 arithmetic, exactly as before polynomial maps existed
            return (
                (m * np.float32(self.scale) + np.float32(self.offset)).astype(np.float32),
                (s * np.float32(abs(self.scale))).astype(np.float32),
            )
        return (
            self.map_mos(m).astype(np.float32),
            (self.slope(m) * s.astype(np.float64)).astype(np.float32),
        )

    def to_json(self) -> str:
        if not self.poly:
            return json.dumps({"scale": self.scale, "offset": self.offset})
        out: dict[str, Any] = {
            "poly": [float(c) for c in self.poly],
            "domain": [float(d) for d in self.domain],
        }  # type: ignore[union-attr]
        if self.method:
            out["method"] = self.method
        return json.dumps(out)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        """Parse ``samos.calibration``; ValueError/KeyError/TypeError when it is not one of the two kinds."""
        cal = json.loads(text)
        if not isinstance(cal, dict):
            raise TypeError("samos.calibration must be a JSON object")
        if "poly" in cal:
            dom = cal["domain"]
            return cls(
                poly=tuple(float(c) for c in cal["poly"]),
                domain=(float(dom[0]), float(dom[1])),
                method=str(cal.get("method", "")),
            )
        return cls(float(cal["scale"]), float(cal["offset"]))


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

    @property
    def members(self) -> int:
        """Models the graph mixes: 1, or the size of a seed ensemble (samos.model.ensemble)."""
        return int(self.extra.get(KEY_MEMBERS, "1"))


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
        calibration = Calibration.from_json(meta[KEY_CALIBRATION])
    except (ValueError, KeyError, TypeError, IndexError) as e:
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
    if not re.fullmatch(r"[1-9][0-9]*", info.extra.get(KEY_MEMBERS, "1")):
        raise ModelFileError(
            f"{source}: metadata {KEY_MEMBERS}={meta[KEY_MEMBERS]!r} must be a positive integer"
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
