"""Frozen, validated configuration dataclasses and their YAML (de)serialisation.

Each component owns one frozen dataclass whose defaults live in one place; YAML in ``configs/`` only
serialises them. ``from_dict`` rejects unknown keys and wrong types with a message naming the key.
Torch-free.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from samos.audio import GRID48

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or dictionary that does not fit its dataclass."""


# --------------------------------------------------------------------------------------------- model
SSLFamily = Literal["wav2vec2", "hubert", "wavlm", "distillmos", "none"]
LayerMix = Literal["last", "mean"]


@dataclass(frozen=True)
class SSLConfig:
    """The frozen SSL branch at 16 kHz: one intermediate layer of a wav2vec2-family encoder.

    Exactly one weight source is used, in this order: ``checkpoint`` (a torchaudio state dict file or a
    Hugging Face model folder), ``bundle`` (a torchaudio pipelines name, e.g. ``WAV2VEC2_XLSR_2B``,
    whose weights must already be in the torch hub cache: nothing is downloaded), else random
    initialisation from ``arch`` (kwargs of ``torchaudio.models.wav2vec2_model``; used by tests).
    ``family="distillmos"`` uses the encoder inside the PyPI package distillmos (weights ship with it);
    ``family="none"`` disables the branch.
    """

    family: SSLFamily = "wav2vec2"
    bundle: str | None = None
    checkpoint: str | None = None
    arch: dict[str, Any] | None = None
    layer: int = 8
    layer_mix: LayerMix = "last"
    """``last``: the output of transformer layer ``layer``; ``mean``: the mean of the outputs of layers
    1..``layer`` (SUPERB's layer weighting, fixed at uniform: learned weights stayed at 1/7 +- 0.01 on
    the call corpus, and a fixed mean keeps the frozen features cacheable)."""
    frozen: bool = True
    normalize_waveform: bool | None = None
    """Zero-mean, unit-variance input per utterance before the encoder; None = what the weight
    source says (the bundle, or ``do_normalize`` in a Hugging Face folder), False for ``arch``."""

    def __post_init__(self) -> None:
        if self.family != "none" and self.layer < 1:
            raise ConfigError(f"ssl.layer must be >= 1 (1 = first transformer layer), got {self.layer}")
        if self.family in ("wav2vec2", "hubert", "wavlm") and not (
            self.bundle or self.checkpoint or self.arch
        ):
            raise ConfigError("ssl: give one of bundle, checkpoint or arch for a wav2vec2-family encoder")

    @property
    def enabled(self) -> bool:
        return self.family != "none"


@dataclass(frozen=True)
class SSLHeadConfig:
    """The SSL-Layer-MOS conv head: Conv1d stack with LayerNorm, ReLU, Dropout and MaxPool1d."""

    channels: tuple[int, ...] = (128, 32, 32)
    kernel: int = 5
    pool: int = 5
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ConfigError("ssl_head.channels must be a non-empty list of positive ints")
        if self.kernel < 1 or self.pool < 1 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("ssl_head: kernel and pool must be >= 1 and dropout in [0, 1)")


@dataclass(frozen=True)
class SpecConfig:
    """The spectrogram branch at 48 kHz: log10 |STFT| (320/160) into the DNSMOS Pro CNN encoder (or
    the compact student's 1-D conv encoder, ``encoder: conv1d``)."""

    enabled: bool = True
    channels: tuple[int, ...] = (32, 32, 64, 64)
    pool_after: int = 2
    """MaxPool(3) after this many conv layers."""
    dropout: float = 0.3
    dropout_layers: int = 3
    bands: int = 1
    """Frequency bands kept per frame: the conv map's max over frequency is taken in this many equal
    bands (1 = the DNSMOS Pro global max; more keep where in the spectrum a feature fires, e.g. 4 bands
    of about 6 kHz say how wide the audio is)."""
    time_pool: str = "max"
    """Pooling of the frames over time: ``max`` (DNSMOS Pro) or ``meanmax`` (mean and max, concatenated)."""
    encoder: str = "dnsmos"
    """``dnsmos``: the DNSMOS Pro 2-D CNN on the spectrogram (the paper's). ``conv1d``: the compact
    student's encoder: the 161 bins are the input channels of a 1-D conv over time (a learned
    filterbank, stride 3 to the 10 ms grid), then ``len(channels) - 1`` dilated conv blocks (kernel
    ``kernel``, dilation 1, 2, 4, ...), each LayerNorm + ReLU; ``pool_after``, ``bands`` and
    ``dropout_layers`` do not apply."""
    kernel: int = 5
    """Kernel of the ``conv1d`` encoder's dilated blocks (odd)."""
    n_fft: int = 320
    """STFT length (= its periodic Hann window) at 48 kHz, samples: 320 (6.7 ms, the paper's) or longer,
    e.g. 960 (20 ms: bins 50 Hz apart, fine enough to resolve the harmonics of voiced speech)."""
    hop: int = 160
    """STFT hop at 48 kHz, samples; it must divide 480 (the 10 ms frame grid). The ``dnsmos`` encoder
    needs the paper's 320 / 160."""

    def __post_init__(self) -> None:
        if self.enabled and (len(self.channels) < 1 or min(self.channels) < 1):
            raise ConfigError("spec.channels must be a non-empty list of positive ints")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("spec.dropout must be in [0, 1)")
        if not 1 <= self.bands <= 16:
            raise ConfigError(f"spec.bands must be in 1..16, got {self.bands}")
        if self.time_pool not in ("max", "meanmax"):
            raise ConfigError(f"spec.time_pool must be 'max' or 'meanmax', got {self.time_pool!r}")
        if self.encoder not in ("dnsmos", "conv1d"):
            raise ConfigError(f"spec.encoder must be 'dnsmos' or 'conv1d', got {self.encoder!r}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"spec.kernel must be odd and >= 1, got {self.kernel}")
        if self.hop < 1 or GRID48 % self.hop or self.n_fft % 2 or self.n_fft < self.hop:
            raise ConfigError(
                "spec.hop must divide 480 and spec.n_fft be even and >= hop,"
                f" got n_fft {self.n_fft}, hop {self.hop}"
            )
        if self.encoder == "dnsmos" and (self.n_fft, self.hop) != (320, 160):
            raise ConfigError(
                f"the dnsmos spectrogram encoder needs n_fft 320 and hop 160, got {self.n_fft} / {self.hop}"
            )


@dataclass(frozen=True)
class FusionConfig:
    """The two Gaussian heads on the fused vector: mean and variance of the MOS.

    mean = mos_center + mean_scale * mu(x); variance = var_scale * softplus(v(x)).
    The paper's code uses mean_scale 2, var_scale 4 (raw MOS targets).
    """

    hidden: tuple[int, ...] = (64, 32)
    mos_center: float = 3.0
    mean_scale: float = 2.0
    var_scale: float = 4.0
    anchor: Literal["none", "teacher"] = "none"
    """``teacher``: the mean is the frozen Distill-MOS head's prediction plus a bounded correction,
    ``mean = teacher + correction_bound * tanh(mean_scale * mu(x) / correction_bound)`` (needs
    ``ssl.family distillmos`` at layer 7); ``none``: ``mean = mos_center + mean_scale * mu(x)``."""
    correction_bound: float = 1.5
    """Largest correction of the teacher's MOS, in MOS units (``anchor: teacher`` only)."""

    def __post_init__(self) -> None:
        if self.correction_bound <= 0:
            raise ConfigError(f"fusion.correction_bound must be > 0 MOS, got {self.correction_bound}")


@dataclass(frozen=True)
class ModelConfig:
    """The whole SA-SSL-MOS model. SSL-only (SSL-Layer-MOS) when ``spec.enabled`` is false."""

    ssl: SSLConfig = field(default_factory=lambda: SSLConfig(family="distillmos", layer=7))
    ssl_head: SSLHeadConfig = field(default_factory=SSLHeadConfig)
    spec: SpecConfig = field(default_factory=SpecConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def __post_init__(self) -> None:
        if not self.ssl.enabled and not self.spec.enabled:
            raise ConfigError("model: at least one of the SSL and spectrogram branches must be enabled")
        if self.fusion.anchor == "teacher" and (
            self.ssl.family != "distillmos" or self.ssl.layer != 7 or self.ssl.layer_mix != "last"
        ):
            raise ConfigError(
                "fusion.anchor 'teacher' reads the Distill-MOS head on the encoder's last layer: it needs "
                f"ssl.family distillmos, ssl.layer 7 and ssl.layer_mix last (got {self.ssl.family}, "
                f"layer {self.ssl.layer}, layer_mix {self.ssl.layer_mix})"
            )


# ------------------------------------------------------------------------------------- (de)serialise
def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Coerce/validate ``value`` against the annotation ``tp``; raise ConfigError naming ``where``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = get_args(tp)[:1]
        return tuple(_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = get_args(tp)
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a plain mapping, validating every key and type."""
    data = dict(data or {})
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)}; "
            f"{cls.__name__} takes: {', '.join(sorted(names))}"
        )
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def to_dict(obj: Any) -> Any:
    """A dataclass (recursively) as plain YAML/JSON-friendly types (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping top level is a ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    return data


def load(cls: type[T], path: str | Path, section: str | None = None) -> T:
    """Load ``cls`` from a YAML file (optionally from one top-level ``section`` of it)."""
    data = load_yaml(path)
    if section is not None:
        data = data.get(section) or {}
    try:
        return from_dict(cls, data, section or "")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
