"""Run configs: YAML loading, overrides, and named errors for keys and values."""

import pytest
import yaml
from conftest import ROOT

from dnolab.lm.config import ConfigError, DNOConfig, from_dict, load_config


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_load_and_name_hub_ids_or_local_names(path):
    from pathlib import Path

    from dnolab.lm.local_models import is_local_model_name

    config = load_config(path)
    name = config.model.name_or_path
    assert name is None or is_local_model_name(name) or not Path(name).exists()  # never a machine's path


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
    ({"training": {"lora_rank": -4}}, r"training.lora_rank must be >= 0 \(0: full fine-tuning\)"),
    ({"training": {"nll_weight": -0.1}}, r"training.nll_weight must be >= 0"),
    ({"training": {"nll_weight": 0.5, "loss": "sppo"}}, r"nll_weight adds to the dno loss only"),
    ({"judge": {"kind": "gpt"}}, "judge.kind must be one of"),
    ({"judge": {"kind": "reward-model"}}, "needs judge.name_or_path"),
    ({"reference": "sft"}, "reference must be"),
    ({"sampling": {"temperature": 0}}, "temperature must be > 0"),
    ({"pairs": {"mode": "random"}}, "pairs.mode"),
    ({"prompts": {"source": "ifeval", "teacher": "gpt4"}}, r"prompts.teacher must be 'template' or 'corrector'"),
    ({"prompts": {"teacher": "corrector"}}, r"prompts.teacher 'corrector' .* needs prompts.source 'ifeval'"),
    ({"name": "../escape"}, "plain folder name"),
    ({"training": 3}, "training must be a mapping"),
    ({"iterations": "abc"}, r"iterations must be an integer, got 'abc'"),
    ({"iterations": 2.5}, r"iterations must be an integer, got 2.5"),
    ({"use_gold": "yes"}, "use_gold must be true or false"),
    ({"training": {"beta": "large"}}, r"training.beta must be a number, got 'large'"),
    ({"replay": [0.3, "a"]}, r"replay\[1\] must be a number"),
    ({"pairs": {"allowed_types": "T>S"}}, "pairs.allowed_types must be a list of strings"),
    ({"eval": {"heldout_judges": [{"kind": "toy", "nois": 1}]}}, r"unknown config key 'eval.heldout_judges\[0\].nois'"),
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


def test_the_dataclass_defaults_are_the_shipped_toy_run():
    """Code defaults and configs/toy.yaml must not drift apart (partial configs fill in defaults)."""
    shipped = load_config("toy").to_dict()
    defaults = DNOConfig().to_dict()
    shipped["eval"].pop("heldout_judges")  # the yaml adds a held-out judge; the code has none by default
    defaults["eval"].pop("heldout_judges")
    assert defaults == shipped


def test_shipped_configs_are_found_by_name():
    assert load_config("toy") == load_config(ROOT / "configs" / "toy.yaml")
    with pytest.raises(ConfigError, match=r"no shipped config of that name; shipped: \['hub_qwen"):
        load_config("toyy")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("trainng.beta", 1, r"unknown config section 'trainng' in 'trainng.beta'; valid sections: eval, judge"),
    ("training.lr", 1e-3, r"unknown config key 'training.lr'; valid keys in training: batch_size, beta"),
    ("iterations", "abc", r"iterations must be an integer, got 'abc' \(str\)"),
    ("name.sub", 1, "unknown config section 'name'"),
])
def test_dotted_overrides_are_checked_like_yaml(key, value, message):
    with pytest.raises(ConfigError, match=message):
        DNOConfig().replace(**{key: value})


def test_config_module_is_plain_data():
    """Reading a config must not load torch, transformers or TRL (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = ("import sys, dnolab.lm.config as c; c.load_config('toy'); "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'trl'}); "
            "print(heavy); sys.exit(bool(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
