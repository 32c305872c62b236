"""training.frozen_layers: the cached lower layers give the whole model's log-probs and the same
step as training that model with those layers frozen; models that cannot be cached are refused."""

import pytest
import torch
from datasets import Dataset

from dnolab.lm.config import TrainingConfig
from dnolab.lm.errors import ConfigError
from dnolab.lm.frozen import FrozenPrefix, only_layers
from dnolab.lm.losses import pair_completion_logps
from dnolab.lm.toy import ToyTask, build_tokenizer
from dnolab.lm.trainer import (
    PreferenceCollator,
    add_reference_logps,
    tokenize_pairs,
    train_on_pairs,
)


def _model(kind: str, tokenizer, layers: int = 4, seed: int = 0):
    import transformers

    config_class, model_class = {"llama": ("LlamaConfig", "LlamaForCausalLM"),
                                 "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
                                 "gemma": ("GemmaConfig", "GemmaForCausalLM")}[kind]
    torch.manual_seed(seed)
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = getattr(transformers, model_class)(config)
    model.config._attn_implementation = "sdpa"
    return model


def _pairs(tokenizer, n: int = 24, seed: int = 0):
    """Toy pairs of uneven prompt and answer lengths, tokenised."""
    import numpy as np

    task, rng = ToyTask(), np.random.default_rng(seed)
    prompts = task.prompts(n, rng)
    data = Dataset.from_dict({"prompt": prompts, "chosen": [" " + task.teacher(p) for p in prompts],
                              "rejected": [" " + task.demonstration(p, rng) for p in prompts]})
    return tokenize_pairs(data, tokenizer, chat=False)


@pytest.mark.parametrize("share_prompt", [True, False], ids=["one-row-per-pair", "two-rows-per-pair"])
@pytest.mark.parametrize("kind", ["llama", "qwen2", "gemma"])
def test_cached_lower_layers_give_the_whole_models_log_probs(kind, share_prompt):
    tokenizer = build_tokenizer()
    model = _model(kind, tokenizer).eval()
    pairs = _pairs(tokenizer).add_column("pair_index", list(range(24)))
    examples = pairs.select_columns(["pair_index", "prompt_ids", "chosen_ids", "rejected_ids"]).to_list()
    collator = PreferenceCollator(tokenizer.pad_token_id, share_prompt=share_prompt)
    prefix = FrozenPrefix(3).build(model, examples, collator, batch_size=7)  # chunks unlike the batches below
    for batch_rows in (examples[:5], examples[5:16], examples[16:]):
        batch = collator(batch_rows)
        with torch.no_grad():
            whole = pair_completion_logps(model, batch)
            with only_layers(model, 3):
                cached = pair_completion_logps(model, {**batch, "inputs_embeds": prefix.hidden_for(batch)})
        torch.testing.assert_close(cached, whole, atol=1e-5, rtol=1e-5)
    assert len(model.model.layers) == 4  # only_layers puts the layers back


def test_a_step_on_cached_layers_is_the_step_of_the_model_with_those_layers_frozen(tmp_path):
    """Two epochs with training.frozen_layers = 3 (cached) against the same model trained with
    the same parameters frozen by hand and no cache: the same weights; embeddings (and the tied
    head) and the lowest three layers unchanged, the top layer moved; the returned model trains
    everything again."""
    tokenizer = build_tokenizer()
    pairs = _pairs(tokenizer, n=32)
    config = dict(beta=0.5, batch_size=8, learning_rate=1e-2, epochs=2)
    cached = _model("llama", tokenizer)
    before = {k: v.clone() for k, v in cached.state_dict().items()}
    data = add_reference_logps(cached, pairs, tokenizer)
    cached, cached_steps = train_on_pairs(cached, tokenizer, data, TrainingConfig(frozen_layers=3, **config),
                                          str(tmp_path / "cached"), seed=0)
    by_hand = _model("llama", tokenizer)
    by_hand.get_input_embeddings().requires_grad_(False)
    for layer in by_hand.model.layers[:3]:
        layer.requires_grad_(False)
    by_hand, steps = train_on_pairs(by_hand, tokenizer, data, TrainingConfig(**config), str(tmp_path / "hand"), seed=0)
    assert len(cached_steps) == len(steps) == 8
    assert [s["loss"] for s in cached_steps] == pytest.approx([s["loss"] for s in steps], abs=1e-5)
    after = cached.state_dict()
    for name, value in by_hand.state_dict().items():
        torch.testing.assert_close(after[name], value, atol=1e-5, rtol=1e-4, msg=name)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("model.layers.3.", "model.norm.")) for k in moved), sorted(moved)
    assert any(k.startswith("model.layers.3.") for k in moved)
    assert all(p.requires_grad for p in cached.parameters())


def test_a_model_whose_forward_changes_its_input_embeddings_is_refused():
    """A decoder that rescales ``inputs_embeds`` inside its forward (as Gemma did before
    transformers 5 moved the √hidden factor into its embedding layer) turns hidden states fed in
    their place into other ones: the cache's first-batch check says so and names the fix."""
    from transformers.models.llama.modeling_llama import LlamaModel

    class RescalesItsInput(LlamaModel):
        def forward(self, input_ids=None, inputs_embeds=None, **kwargs):
            if inputs_embeds is None:
                inputs_embeds = self.embed_tokens(input_ids)
            return super().forward(inputs_embeds=inputs_embeds * 2.0, **kwargs)

    tokenizer = build_tokenizer()
    model = _model("llama", tokenizer)
    examples = _pairs(tokenizer, n=4).add_column("pair_index", list(range(4))).to_list()
    collator = PreferenceCollator(tokenizer.pad_token_id)
    FrozenPrefix(2).build(model, examples, collator, batch_size=4)  # the plain model passes
    model.model.__class__ = RescalesItsInput
    with pytest.raises(ConfigError, match=r"set training\.frozen_layers to 0"):
        FrozenPrefix(2).build(model, examples, collator, batch_size=4)


def test_a_model_without_model_layers_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = build_tokenizer()
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2))
    data = add_reference_logps(model, _pairs(tokenizer, n=8), tokenizer)
    with pytest.raises(ConfigError, match=r"model\.model\.layers"):
        train_on_pairs(model, tokenizer, data, TrainingConfig(batch_size=8, frozen_layers=1), str(tmp_path), seed=0)


@pytest.mark.parametrize("frozen", [4, 5, -1])
def test_frozen_layers_must_leave_a_layer_to_train(frozen, tmp_path):
    tokenizer = build_tokenizer()
    data = add_reference_logps(_model("llama", tokenizer), _pairs(tokenizer, n=8), tokenizer)
    with pytest.raises(ConfigError, match="frozen_layers"):
        train_on_pairs(_model("llama", tokenizer), tokenizer, data,
                       TrainingConfig(batch_size=8, frozen_layers=frozen), str(tmp_path), seed=0)
