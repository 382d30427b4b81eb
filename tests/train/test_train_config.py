"""TrainConfig: the shipped YAML files load; bad keys and values are ConfigErrors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from samos.config import ConfigError
from samos.train.config import DataConfig, StepConfig, TrainConfig, load_train_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_paper_config_is_the_paper_recipe() -> None:
    cfg = load_train_config(CONFIGS / "paper.yaml")
    assert cfg.model.ssl.bundle == "WAV2VEC2_XLSR_2B" and cfg.model.ssl.layer == 9
    assert cfg.pretrain is not None and cfg.finetune is not None
    for step in (cfg.pretrain, cfg.finetune):
        assert (step.lr, step.weight_decay, step.batch_size, step.gamma, step.crop_seconds) == (
            1e-4,
            0.0,
            64,
            0.9999,
            10.0,
        )
    assert cfg.pretrain.epochs == 30 and cfg.finetune.epochs == 3
    assert cfg.pretrain.data.format == "nisqa" and len(cfg.pretrain.data.train) == 2
    assert cfg.finetune.data.format == "audiomos"


def test_smoke_config_runs_both_steps_on_synthetic_audio() -> None:
    cfg = load_train_config(CONFIGS / "smoke.yaml")
    assert [n for n, _ in cfg.steps()] == ["pretrain", "finetune"]
    assert all(s.data.format == "synthetic" for _, s in cfg.steps())
    assert cfg.model.ssl.arch is not None and cfg.model.ssl.bundle is None


def test_strictness(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match="pretrain.epochz"):
        load_train_config(bad)
    bad.write_text("pretrain:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match="batch_size"):
        load_train_config(bad)
    bad.write_text("device: cpu\n")
    with pytest.raises(ConfigError, match="pretrain and/or a finetune"):
        load_train_config(bad)
    bad.write_text("pretrain:\n  data: {format: nisqa, train: [a.csv]}\n")
    with pytest.raises(ConfigError, match="train and valid"):
        load_train_config(bad)
    bad.write_text("pretrain:\n  data: {format: synthetic, train: [a.csv]}\n")
    with pytest.raises(ConfigError, match="synthetic"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="no such config"):
        load_train_config(tmp_path / "missing.yaml")


def test_defaults_are_the_paper_values() -> None:
    s = StepConfig(data=DataConfig(format="synthetic"))
    assert (s.lr, s.weight_decay, s.batch_size, s.gamma, s.crop_seconds, s.epochs) == (
        1e-4,
        0.0,
        64,
        0.9999,
        10.0,
        30,
    )
    with pytest.raises(ConfigError):
        StepConfig(gamma=1.5)
    with pytest.raises(ConfigError):
        TrainConfig()
