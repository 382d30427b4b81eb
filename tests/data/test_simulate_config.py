"""The simulator config: YAML round trip, strict keys, validation, the shipped file."""

from __future__ import annotations

from pathlib import Path

import pytest

from samos.config import ConfigError, dump_yaml, from_dict, load_yaml
from samos.data.simulate.config import LabelConfig, SimulateConfig, load_simulate_config

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
        ({"labels": {"teacher": "distillmos_padded"}}, "distillmos_whole"),
        ({"labels": {"bak_weight": 1.5}}, "bak_weight"),
        ({"labels": {"bak_weight": -0.1}}, "bak_weight"),
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


def test_shipped_configs_serialise_the_defaults() -> None:
    import dataclasses

    small = load_simulate_config(SHIPPED)
    calls = load_simulate_config(SHIPPED.with_name("simulate_calls.yaml"))
    defaults = SimulateConfig()
    assert dataclasses.replace(small, clips=defaults.clips, seed=defaults.seed) == defaults
    # the call corpus differs in size and in its labels: the whole-clip teacher on the written clip
    # (the default model's corpus, docs/DATA.md); configs/simulate.yaml keeps the defaults' labels
    assert calls.labels == LabelConfig(teacher="distillmos_whole", as_written=True)
    assert dataclasses.replace(calls, clips=small.clips, labels=small.labels) == small
    assert calls.clips == 10 * small.clips


def test_new_stage_values_are_validated() -> None:
    for data, match in (
        ({"degrade": {"p_echo": 2.0}}, "p_echo"),
        ({"degrade": {"room": "cathedral"}}, "room"),
        ({"degrade": {"jitter_spike_s": [0.1, 0.9]}}, "jitter_spike_s"),
        ({"degrade": {"echo_delay_s": [0.3, 0.03]}}, "echo_delay_s"),
        ({"sources": {"weights": [1, 0, 0, 0, 0, 0]}}, "weights"),
    ):
        with pytest.raises(ConfigError, match=match):
            from_dict(SimulateConfig, data)
