"""Training configuration: frozen dataclasses with the paper's defaults, read strictly from YAML.

``TrainConfig`` = the model (:class:`samos.config.ModelConfig`) plus up to two steps:
``pretrain`` (step 1) and ``finetune`` (step 2, started from step 1's best checkpoint when both run,
else from ``finetune.init_checkpoint``). Unknown keys and wrong types are errors naming the key.
Torch-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from samos.config import ConfigError, ModelConfig, from_dict, load_yaml
from samos.data.synthetic import SyntheticConfig

DataFormat = Literal["auto", "generic", "nisqa", "audiomos", "tencent", "synthetic"]
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(name: str, what: str = "device") -> str:
    """``name`` if it is a torch device samos trains or evaluates on: auto, cpu, cuda or cuda:N."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise ConfigError(f"{what} must be auto, cpu, cuda or cuda:N (N a GPU index), got {name!r}")
    return name


@dataclass(frozen=True)
class DataConfig:
    """Rated manifests of one step.

    ``train`` / ``valid``: lists of manifest CSVs (concatenated); ``root`` / ``valid_root``: folder
    their relative paths start from (default: each reader's own rule, usually the CSV's folder);
    ``format``: the reader (``auto`` sniffs the header; ``synthetic`` generates a corpus from
    ``synthetic`` into the run folder and ignores ``train`` / ``valid``).
    """

    train: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()
    root: str | None = None
    valid_root: str | None = None
    format: DataFormat = "auto"
    synthetic: SyntheticConfig | None = None
    probe_audio: bool = True
    """Read every file's header before training (cheap) so bad files are reported up front."""
    mix: tuple[float, ...] | None = None
    """Share of each ``train`` manifest in the batches (samos.train.sampling.MixSampler); an epoch
    then sees the first manifest about once. None: every training item once per epoch."""

    def __post_init__(self) -> None:
        if self.mix is not None:
            if len(self.mix) != len(self.train):
                raise ConfigError(
                    f"data.mix gives {len(self.mix)} shares for {len(self.train)} train manifests"
                )
            if any(w <= 0 for w in self.mix):
                raise ConfigError(f"data.mix shares must be > 0, got {list(self.mix)}")
        if self.format == "synthetic":
            if self.train or self.valid:
                raise ConfigError("data: format synthetic generates its own clips; leave train/valid empty")
        elif not self.train or not self.valid:
            raise ConfigError("data: give train and valid manifest lists (or format: synthetic)")

    @property
    def synthetic_cfg(self) -> SyntheticConfig:
        return self.synthetic or SyntheticConfig()


@dataclass(frozen=True)
class StepConfig:
    """One training step (the paper: Adam 1e-4, no weight decay, batch 64, ExponentialLR 0.9999
    per iteration, Gaussian NLL, model selection on the best validation utterance-level PCC)."""

    data: DataConfig = field(default_factory=lambda: DataConfig(format="synthetic"))
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    gamma: float = 0.9999
    """ExponentialLR factor, stepped once per iteration."""
    crop_seconds: float = 10.0
    seed: int = 0
    num_workers: int = 0
    cache_dir: str | None = None
    """Folder of the frozen SSL feature cache (relative paths are inside --out); None: no cache
    (features are recomputed each batch, with a random crop per epoch)."""
    cache_dtype: Literal["float16", "float32"] = "float16"
    init_checkpoint: str | None = None
    """Start from this SAMOS checkpoint (step 2 run alone); ignored when step 1 ran before."""
    max_steps_per_epoch: int | None = None
    """Cap on iterations per epoch (quick experiments); None: the whole training set."""
    collapse_epochs: int | None = 5
    """Stop the run (``TrainingError``, checkpoints kept) when the model predicts one MOS for every
    validation clip this many trained epochs in a row: its mean head's ReLU units are off for every
    input and get no gradient, and seldom come back. None: never stop for that."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 < self.gamma <= 1:
            raise ConfigError("lr must be > 0, weight_decay >= 0 and gamma in (0, 1]")
        if not 0.05 <= self.crop_seconds <= 120:
            raise ConfigError("crop_seconds must be in [0.05, 120]")
        if self.num_workers < 0:
            raise ConfigError("num_workers must be >= 0")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError("max_steps_per_epoch must be >= 1")
        if self.collapse_epochs is not None and self.collapse_epochs < 1:
            raise ConfigError("collapse_epochs must be >= 1 (or null: never stop for a constant model)")


@dataclass(frozen=True)
class TrainConfig:
    """The whole run: model + ``pretrain`` (step 1) and/or ``finetune`` (step 2)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: StepConfig | None = None
    finetune: StepConfig | None = None
    device: str = "auto"
    """"auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ..."""
    threads: int | None = None
    """torch intra-op threads (None: torch's default)."""

    def __post_init__(self) -> None:
        if self.pretrain is None and self.finetune is None:
            raise ConfigError("the config needs a pretrain and/or a finetune section")
        check_device(self.device)

    def steps(self) -> list[tuple[str, StepConfig]]:
        return [
            (n, s) for n, s in (("pretrain", self.pretrain), ("finetune", self.finetune)) if s is not None
        ]


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and validate a training YAML (``overrides``: top-level keys replaced before validation)."""
    data = load_yaml(path)
    data.update(overrides or {})
    try:
        return from_dict(TrainConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
