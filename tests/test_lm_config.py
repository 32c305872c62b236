"""Run configs: YAML loading, overrides, and named errors for keys and values."""

import pytest
import yaml
from conftest import ROOT

from dnolab.lm.config import ConfigError, DNOConfig, from_dict, load_config


@pytest.mark.parametrize("name", ["toy.yaml", "toy_smoke.yaml", "hub_qwen_ultrafeedback.yaml"])
def test_shipped_configs_load(name):
    config = load_config(ROOT / "configs" / name)
    assert config.samples_per_prompt >= 2 and config.training.beta > 0


def test_round_trip_and_overrides(tmp_path):
    config = from_dict({"iterations": 2, "training": {"beta": 0.5}, "replay": [0.3, 0.15]})
    assert config.replay == (0.3, 0.15)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    again = load_config(path, {"training.beta": 0.25, "iterations": 3})
    assert again.training.beta == 0.25 and again.iterations == 3 and again.replay == (0.3, 0.15)


@pytest.mark.parametrize(("data", "message"), [
    ({"iteratons": 3}, r"unknown config key 'iteratons'.*valid keys.*iterations"),
    ({"training": {"lr": 1e-3}}, r"unknown config key 'training.lr'.*learning_rate"),
    ({"samples_per_prompt": 1}, r"samples_per_prompt \(K\) must be >= 2"),
    ({"training": {"beta": 0}}, r"training.beta must be > 0"),
    ({"training": {"beta": -1.0}}, r"training.beta must be > 0"),
    ({"judge": {"kind": "gpt"}}, "judge.kind must be one of"),
    ({"judge": {"kind": "reward-model"}}, "needs judge.name_or_path"),
    ({"reference": "sft"}, "reference must be"),
    ({"sampling": {"temperature": 0}}, "temperature must be > 0"),
    ({"pairs": {"mode": "random"}}, "pairs.mode"),
    ({"name": "../escape"}, "plain folder name"),
    ({"training": 3}, "training. must be a mapping"),
])
def test_bad_configs_name_the_problem(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(data)


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("iterations: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_defaults_are_the_calibrated_toy_run():
    c = DNOConfig()
    assert (c.samples_per_prompt, c.training.beta, c.reference) == (4, 1.0, "previous")
