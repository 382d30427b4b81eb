"""The simulator config: YAML round trip, strict keys, validation, the shipped file."""

from __future__ import annotations

from pathlib import Path

import pytest

from samos.config import ConfigError, dump_yaml, from_dict, load_yaml
from samos.data.simulate.config import SimulateConfig, load_simulate_config

SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "simulate.yaml"


def test_shipped_config_loads_and_keeps_p835_talkers_out() -> None:
    cfg = load_simulate_config(SHIPPED)
    assert cfg.sources.p835_clean is None and cfg.sources.weights[3] == 0.0
    assert cfg.utterance.seconds[1] <= 7.68  # one Distill-MOS window per clip
    assert 0 < cfg.val_fraction < 1


def test_round_trip(tmp_path: Path) -> None:
    cfg = SimulateConfig(clips=7, seed=3)
    p = tmp_path / "s.yaml"
    p.write_text(dump_yaml(cfg))
    assert load_simulate_config(p) == cfg
    assert load_simulate_config(None) == SimulateConfig()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"clipz": 3}, "unknown key"),
        ({"clips": 0}, "clips"),
        ({"degrade": {"p_noise": 1.5}}, "p_noise"),
        ({"degrade": {"snr_db": [30, 10]}}, "snr_db"),
        ({"degrade": {"noise_types": ["white", "purple"]}}, "noise_types"),
        ({"sources": {"weights": [1, 1]}}, "weights"),
        ({"labels": {"teacher": "dnsmos"}}, "teacher"),
        ({"utterance": {"level_db": 3.0}}, "level_db"),
    ],
)
def test_bad_values_are_config_errors(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_dict(SimulateConfig, data)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config"):
        load_simulate_config(tmp_path / "nope.yaml")
    assert load_yaml(SHIPPED)["clips"] >= 1
