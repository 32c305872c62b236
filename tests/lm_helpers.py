"""Tiny models saved to disk, standing in for Hub models in tests (no network needed)."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "Write a haiku about the sea.", "Explain photosynthesis in one sentence.",
    "What is 2 + 2? It is 4.", "Name three primary colours: red, yellow and blue.",
    "The quick brown fox jumps over the lazy dog.", "Sort the numbers 3 1 2 into 1 2 3.",
] * 20


def save_toy_policy(path: Path, seed: int = 0) -> Path:
    """A randomly initialised toy-world policy (no training), saved with save_pretrained."""
    from dnolab.lm.toy import ToyModelConfig, build_model, build_tokenizer

    tokenizer = build_tokenizer()
    build_model(ToyModelConfig(), tokenizer, seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def byte_level_tokenizer(with_pad: bool = True, chat_template: str | None = CHAT_TEMPLATE):
    """A small byte-level BPE tokenizer trained on a few sentences; any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<|user|>", "<|assistant|>", "<|end|>"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    kwargs = {"eos_token": "<eos>", "padding_side": "left", "chat_template": chat_template}
    if with_pad:
        kwargs["pad_token"] = "<pad>"
    return PreTrainedTokenizerFast(tokenizer_object=core, **kwargs)


def save_tiny_chat_model(path: Path, seed: int = 0, with_pad: bool = True, max_positions: int = 256) -> Path:
    """A tiny random Llama chat model with a byte-level tokenizer and a chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_level_tokenizer(with_pad)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=max_positions,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_reward_model(path: Path, seed: int = 0, score_scale: float = 1.0) -> Path:
    """A tiny random sequence-classification (reward) model with the same tokenizer;
    ``score_scale`` multiplies the reward head, to spread its random rewards apart."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer = byte_level_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      num_labels=1, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForSequenceClassification(cfg)
    with torch.no_grad():
        model.score.weight.mul_(score_scale)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_prompt_file(path: Path, n: int = 40) -> Path:
    """A JSONL prompt set with a chat-formatted gold column, like UltraFeedback's."""
    import json

    with path.open("w") as f:
        for i in range(n):
            prompt = f"Question {i}: {CORPUS[i % 6]}"
            f.write(json.dumps({"prompt": prompt,
                                "chosen": [{"role": "user", "content": prompt},
                                           {"role": "assistant", "content": f"A good answer {i}."}]}) + "\n")
    return path
