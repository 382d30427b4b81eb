"""Frozen configuration of the corpus simulator (``configs/simulate.yaml`` serialises it).

Durations in seconds, frequencies in Hz, levels in dBov, bitrates in kbit/s, probabilities in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from samos.config import ConfigError, from_dict, load_yaml


def _prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value}")


def _range(name: str, pair: tuple[float, ...], low: float | None = None) -> None:
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ConfigError(f"{name} must be a [min, max] pair with min <= max, got {list(pair)}")
    if low is not None and pair[0] < low:
        raise ConfigError(f"{name} must be >= {low}, got {list(pair)}")


@dataclass(frozen=True)
class SourcesConfig:
    """Where clean speech comes from. A folder set to null is not used; a folder that is set must exist.

    ``weights`` gives the relative share of utterances per source (klettres, fillets, espeak, p835).
    ``p835_clean`` holds the six talkers of the P.835 test set: leave it null (the default) so that the
    P.835 talker-level cross-validation stays talker-independent.
    """

    klettres: str | None = "/usr/share/klettres"
    fillets: str | None = "/usr/share/games/fillets-ng"
    espeak: bool = True
    espeak_voices: tuple[str, ...] = ("en", "en-us", "de", "fr", "es", "it", "nl", "pl", "sv", "cs")
    p835_clean: str | None = None
    weights: tuple[float, ...] = (0.45, 0.4, 0.15, 0.0)

    def __post_init__(self) -> None:
        if len(self.weights) != 4 or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ConfigError(
                "sources.weights must be 4 non-negative numbers (klettres, fillets, espeak, p835)"
            )


@dataclass(frozen=True)
class UtteranceConfig:
    """How short units (letters, syllables, dialogue lines) become utterances."""

    seconds: tuple[float, float] = (4.0, 7.5)
    """Utterance duration range. Up to 7.68 s Distill-MOS labels a clip in one window (its cost per
    clip doubles above that)."""
    pause: tuple[float, float] = (0.15, 0.6)
    level_db: float = -26.0

    def __post_init__(self) -> None:
        _range("utterance.seconds", self.seconds, 0.5)
        _range("utterance.pause", self.pause, 0.0)
        if not -60.0 <= self.level_db <= -3.0:
            raise ConfigError(f"utterance.level_db must be in [-60, -3] dBov, got {self.level_db}")


@dataclass(frozen=True)
class DegradeConfig:
    """Per-clip probabilities and parameter choices of each degradation (drawn independently)."""

    p_clean: float = 0.12
    p_band: float = 0.35
    lowpass_hz: tuple[float, ...] = (4_000, 8_000, 12_000, 16_000, 20_000)
    p_codec: float = 0.45
    opus_kbps: tuple[float, ...] = (6, 8, 12, 16, 24, 32, 48, 64)
    mp3_kbps: tuple[float, ...] = (16, 32, 64, 128)
    aac_kbps: tuple[float, ...] = (16, 32, 64, 128)
    amr_nb_kbps: tuple[float, ...] = (4.75, 7.4, 12.2)
    p_loss: float = 0.2
    loss_rate: tuple[float, float] = (0.01, 0.2)
    p_noise: float = 0.4
    snr_db: tuple[float, float] = (0.0, 40.0)
    noise_types: tuple[str, ...] = ("white", "pink", "brown", "babble", "hum")
    p_reverb: float = 0.2
    rt60_s: tuple[float, float] = (0.2, 1.2)
    p_clip: float = 0.1
    clip_fraction: tuple[float, float] = (0.1, 0.6)
    """Clipping threshold as a fraction of the clip's peak."""
    p_level: float = 0.15
    quiet_db: tuple[float, float] = (-50.0, -36.0)
    loud_db: tuple[float, float] = (-12.0, -4.0)

    def __post_init__(self) -> None:
        for name in ("p_clean", "p_band", "p_codec", "p_loss", "p_noise", "p_reverb", "p_clip", "p_level"):
            _prob(f"degrade.{name}", getattr(self, name))
        _range("degrade.loss_rate", self.loss_rate, 0.0)
        _range("degrade.snr_db", self.snr_db)
        _range("degrade.rt60_s", self.rt60_s, 0.05)
        _range("degrade.clip_fraction", self.clip_fraction, 0.01)
        _range("degrade.quiet_db", self.quiet_db)
        _range("degrade.loud_db", self.loud_db)
        if self.loss_rate[1] >= 1.0:
            raise ConfigError("degrade.loss_rate must stay below 1")
        known = {"white", "pink", "brown", "babble", "hum"}
        if not self.noise_types or set(self.noise_types) - known:
            raise ConfigError(f"degrade.noise_types must be a non-empty subset of {sorted(known)}")
        if not self.lowpass_hz or min(self.lowpass_hz) < 1_000 or max(self.lowpass_hz) >= 24_000:
            raise ConfigError("degrade.lowpass_hz must be cut-offs in [1000, 24000) Hz")


@dataclass(frozen=True)
class LabelConfig:
    """Pseudo-MOS labelling (see samos.data.simulate.labels and docs/DATA.md)."""

    teacher: str = "distillmos"
    """``distillmos`` (Distill-MOS on the 16 kHz clip) or ``none`` (bandwidth term only; tests/debug)."""
    high_band: bool = True
    """Add the E-model bandwidth term for the band above what the 16 kHz teacher hears."""

    def __post_init__(self) -> None:
        if self.teacher not in ("distillmos", "none"):
            raise ConfigError(f"labels.teacher must be 'distillmos' or 'none', got {self.teacher!r}")


@dataclass(frozen=True)
class SimulateConfig:
    """The whole simulator: how many clips, from what, degraded how, labelled how."""

    clips: int = 1200
    seed: int = 0
    val_fraction: float = 0.1
    pcm16: bool = True
    """Write 16-bit PCM wav (else float32)."""
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    utterance: UtteranceConfig = field(default_factory=UtteranceConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise ConfigError(f"clips must be >= 1, got {self.clips}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


def load_simulate_config(path: str | Path | None) -> SimulateConfig:
    """Read a SimulateConfig from YAML (the defaults when ``path`` is None)."""
    if path is None:
        return SimulateConfig()
    data = load_yaml(path)  # its errors name the file already
    try:
        return from_dict(SimulateConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
