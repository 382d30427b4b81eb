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

    ``weights`` gives the relative share of utterances per source (klettres, fillets, espeak, p835,
    tuxpaint); four numbers (an older config) leave tuxpaint out.
    ``p835_clean`` holds the six talkers of the P.835 test set: leave it null (the default) so that the
    P.835 talker-level cross-validation stays talker-independent.
    """

    klettres: str | None = "/usr/share/klettres"
    fillets: str | None = "/usr/share/games/fillets-ng"
    espeak: bool = True
    espeak_voices: tuple[str, ...] = ("en", "en-us", "de", "fr", "es", "it", "nl", "pl", "sv", "cs")
    p835_clean: str | None = None
    tuxpaint: str | None = "/usr/share/tuxpaint/stamps"
    """Debian tuxpaint-stamps-default: spoken descriptions, most of them full band."""
    weights: tuple[float, ...] = (0.25, 0.2, 0.1, 0.0, 0.45)

    def __post_init__(self) -> None:
        if len(self.weights) not in (4, 5) or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ConfigError(
                "sources.weights must be 5 non-negative numbers (klettres, fillets, espeak, p835, "
                "tuxpaint), or 4 without tuxpaint"
            )

    @property
    def source_weights(self) -> tuple[float, ...]:
        """The five weights (tuxpaint 0 when the config gave four)."""
        return tuple(self.weights) + (0.0,) * (5 - len(self.weights))


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


NOISE_TYPES = ("white", "pink", "brown", "babble", "hum", "recorded")
OPUS_BANDWIDTHS_HZ = (4_000, 6_000, 8_000, 12_000, 20_000)


@dataclass(frozen=True)
class DegradeConfig:
    """Per-clip probabilities and parameter choices of each degradation (drawn independently).

    docs/DATA.md describes each stage, how it is made and why these ranges.
    """

    p_clean: float = 0.1
    # --- the talker's room and what else the microphone picks up
    p_reverb: float = 0.25
    rt60_s: tuple[float, float] = (0.2, 1.2)
    room: str = "pyroomacoustics"
    """``pyroomacoustics`` (image sources + matched stochastic tail, see room.py) or ``synthetic``
    (direct impulse + decaying noise); ``pyroomacoustics`` falls back to ``synthetic`` when the package
    is not installed."""
    talker_distance_m: tuple[float, float] = (0.3, 3.0)
    p_talker: float = 0.12
    """A competing talker near the microphone (another person in the room)."""
    sir_db: tuple[float, float] = (0.0, 20.0)
    """Signal-to-interference ratio of the competing talker, active levels (dB)."""
    p_echo: float = 0.12
    """Acoustic echo that the echo canceller left: of the talker's own voice (talker echo) or, in
    double talk, of the far-end talker speaking at the same time."""
    p_double_talk: float = 0.5
    """Of the echo clips, the share where the echo is the far end's speech (double talk)."""
    echo_delay_s: tuple[float, float] = (0.03, 0.3)
    echo_loss_db: tuple[float, float] = (5.0, 30.0)
    """How far the echo is below the talker's active level (dB)."""
    echo_rt60_s: tuple[float, float] = (0.1, 0.5)
    p_echo_nonlinear: float = 0.5
    """Of the echo clips, the share played by an overdriven loudspeaker (soft clipping)."""
    p_noise: float = 0.45
    snr_db: tuple[float, float] = (0.0, 40.0)
    noise_types: tuple[str, ...] = NOISE_TYPES
    noise_dir: str | None = "/work/shared/data/noise"
    """Folder of recorded noises for the ``recorded`` type (None: that type is not drawn)."""
    # --- the sending device
    p_band: float = 0.25
    lowpass_hz: tuple[float, ...] = (4_000, 8_000, 12_000, 16_000, 20_000)
    p_clip: float = 0.1
    clip_fraction: tuple[float, float] = (0.1, 0.6)
    """Capture clipping threshold as a fraction of the clip's peak (then make-up gain)."""
    p_suppressor: float = 0.3
    """Of the noisy clips, the share that goes through a noise suppressor (spectral subtraction)."""
    oversubtract: tuple[float, float] = (1.0, 6.0)
    suppressor_floor_db: tuple[float, float] = (-40.0, -10.0)
    p_agc: float = 0.12
    agc_max_gain_db: tuple[float, float] = (10.0, 30.0)
    agc_release_s: tuple[float, float] = (0.3, 3.0)
    p_level: float = 0.12
    quiet_db: tuple[float, float] = (-50.0, -36.0)
    loud_db: tuple[float, float] = (-12.0, -4.0)
    # --- the codec and the network
    p_codec: float = 0.5
    opus_kbps: tuple[float, ...] = (6, 8, 12, 16, 24, 32, 48, 64)
    mp3_kbps: tuple[float, ...] = (16, 32, 64, 128)
    aac_kbps: tuple[float, ...] = (16, 32, 64, 128)
    amr_nb_kbps: tuple[float, ...] = (4.75, 7.4, 12.2)
    p_bandwidth_switch: float = 0.1
    """Opus calls whose audio bandwidth switches once mid-clip (to another of OPUS_BANDWIDTHS_HZ)."""
    p_loss: float = 0.25
    loss_rate: tuple[float, float] = (0.01, 0.2)
    p_loss_bursty: float = 0.6
    """Of the loss clips, the share drawn from a Gilbert-Elliott channel (else independent losses)."""
    p_loss_plc: float = 0.75
    """Of the loss clips, the share sent as an Opus call through libopus, its lost packets concealed
    by the decoder's PLC (else a codec without PLC: silence insertion or frame repetition)."""
    p_fec: float = 0.3
    """Of the libopus loss clips, the share with in-band FEC on."""
    p_jitter: float = 0.12
    """Jitter-buffer time-scaling (expand then accelerate) around delay spikes."""
    jitter_spike_s: tuple[float, float] = (0.02, 0.15)
    # --- the receiving side
    p_playback_clip: float = 0.06
    playback_gain_db: tuple[float, float] = (6.0, 20.0)
    """Gain before the receiver's full-scale limit (clipping after the codec), dB."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name.startswith("p_"):
                _prob(f"degrade.{name}", value)
        for name in (
            "loss_rate",
            "snr_db",
            "clip_fraction",
            "quiet_db",
            "loud_db",
            "sir_db",
            "echo_loss_db",
            "oversubtract",
            "suppressor_floor_db",
            "agc_max_gain_db",
            "playback_gain_db",
        ):
            _range(f"degrade.{name}", getattr(self, name))
        _range("degrade.loss_rate", self.loss_rate, 0.0)
        _range("degrade.rt60_s", self.rt60_s, 0.05)
        _range("degrade.echo_rt60_s", self.echo_rt60_s, 0.05)
        _range("degrade.echo_delay_s", self.echo_delay_s, 0.0)
        _range("degrade.talker_distance_m", self.talker_distance_m, 0.1)
        _range("degrade.agc_release_s", self.agc_release_s, 0.01)
        _range("degrade.jitter_spike_s", self.jitter_spike_s, 0.005)
        _range("degrade.clip_fraction", self.clip_fraction, 0.01)
        if self.jitter_spike_s[1] > 0.4:
            raise ConfigError("degrade.jitter_spike_s must stay at or below 0.4 s")
        if self.loss_rate[1] >= 0.5:
            raise ConfigError("degrade.loss_rate must stay below 0.5")
        if self.room not in ("pyroomacoustics", "synthetic"):
            raise ConfigError(f"degrade.room must be 'pyroomacoustics' or 'synthetic', got {self.room!r}")
        if not self.noise_types or set(self.noise_types) - set(NOISE_TYPES):
            raise ConfigError(f"degrade.noise_types must be a non-empty subset of {list(NOISE_TYPES)}")
        if not self.lowpass_hz or min(self.lowpass_hz) < 1_000 or max(self.lowpass_hz) >= 24_000:
            raise ConfigError("degrade.lowpass_hz must be cut-offs in [1000, 24000) Hz")


TEACHERS = ("distillmos", "distillmos_whole", "none")


@dataclass(frozen=True)
class LabelConfig:
    """Pseudo-MOS labelling (see samos.data.simulate.labels and docs/DATA.md)."""

    teacher: str = "distillmos"
    """``distillmos`` (Distill-MOS on the 16 kHz clip, as the package scores it: zero-padded to its
    7.68 s window), ``distillmos_whole`` (the same model on the clip as it is, without the padding;
    docs/DATA.md, "The teacher without its padding") or ``none`` (bandwidth term only; tests/debug)."""
    high_band: bool = True
    """Add the E-model bandwidth term for the band above what the 16 kHz teacher hears."""
    bak_weight: float = 0.0
    """Weight W of DNSMOS P.835's BAK blended with the teacher before the bandwidth term:
    ``(1 - W) teacher + W BAK`` (0: the teacher alone; docs/DATA.md, "A second label source")."""
    as_written: bool = False
    """Label the clip as its wav file holds it (16-bit PCM when ``pcm16``), the signal a model trains
    on, rather than the float signal before writing (docs/DATA.md, "The teacher without its padding")."""

    def __post_init__(self) -> None:
        if self.teacher not in TEACHERS:
            raise ConfigError(f"labels.teacher must be one of {', '.join(TEACHERS)}, got {self.teacher!r}")
        if not 0.0 <= self.bak_weight <= 1.0:
            raise ConfigError(f"labels.bak_weight must be in [0, 1], got {self.bak_weight!r}")


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
