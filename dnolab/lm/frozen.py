"""Training only the upper layers, with the frozen lower layers run once per pair, not per step.

With the input embeddings (and a tied output head) and the lowest N decoder layers fixed, the
hidden state that leaves layer N at a token depends on the pair's tokens only, never on the
step. :class:`FrozenPrefix` computes it once for every pair before the first step; each step
then runs layers N+1… from it (``inputs_embeds`` into the model with its layer list cut to the
upper layers). The values are those of the whole model (tests/test_frozen_layers.py), and a
step costs only the upper layers' forward and backward (benchmarks/results/frozen_layers.md).

The prefix of a token is the same in both layouts of ``dnolab.lm.trainer.PreferenceCollator``:
the prompt sees itself, each answer the prompt and itself, so one cache per pair holds
``[prompt; chosen; rejected]`` and serves either.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .errors import ConfigError
from .losses import pair_completion_logps


def decoder_layers(model) -> nn.ModuleList:
    """The decoder's layer list (``model.model.layers``: Llama, Qwen2, Mistral, Gemma, …)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ConfigError(f"training.frozen_layers needs a decoder whose layers are model.model.layers; "
                          f"{type(model).__name__} has none: set training.frozen_layers to 0")
    return layers


def freeze_lowest_layers(model, n: int) -> None:
    """Fix the input embeddings (a tied output head with them) and the lowest ``n`` decoder layers."""
    layers = decoder_layers(model)
    if not 0 < n < len(layers):
        raise ConfigError(f"training.frozen_layers={n}: it must leave at least one of the model's "
                          f"{len(layers)} decoder layers to train")
    model.get_input_embeddings().requires_grad_(False)
    for layer in layers[:n]:
        layer.requires_grad_(False)


@contextmanager
def only_layers(model, start: int, stop: int | None = None, final_norm: bool = True):
    """The model with its layer list cut to ``layers[start:stop]`` (and, without ``final_norm``,
    its last norm an identity, so that it returns what layer ``stop`` receives)."""
    base = model.model
    layers, norm = base.layers, base.norm
    base.layers = nn.ModuleList(list(layers)[start:stop])
    if not final_norm:
        base.norm = nn.Identity()
    try:
        yield model
    finally:
        base.layers, base.norm = layers, norm


class FrozenPrefix:
    """Each pair's hidden states after the frozen lower layers, and the batches built from them."""

    def __init__(self, n_layers: int):
        self.n_layers = n_layers
        self.states: dict[int, torch.Tensor] = {}  # pair index → [prompt; chosen; rejected] × hidden
        self.lengths: dict[int, tuple[int, int, int]] = {}

    @torch.no_grad()
    def build(self, model, examples: list[dict], collator, batch_size: int, bf16: bool = False) -> FrozenPrefix:
        """Run embeddings and layers 1…N over every pair once (each ``example`` holds
        ``pair_index``, ``prompt_ids``, ``chosen_ids``, ``rejected_ids``), under the step's
        bfloat16 autocast if it has one, so that the step sees what the whole model would compute."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collator(chunk).items()}
            if start == 0:  # two pairs tell whether the model can be cached (a batch: a reference pass)
                self._check(model, {k: v.to(device) for k, v in collator(chunk[:2]).items()})
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                self._keep(chunk, batch, self._lower(model, batch))
        model.train(was_training)
        return self

    def _lower(self, model, batch: dict) -> torch.Tensor:
        """What layer N + 1 receives, for a collated batch."""
        with only_layers(model, 0, self.n_layers, final_norm=False):
            return model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               position_ids=batch.get("position_ids"), use_cache=False).last_hidden_state

    def _check(self, model, batch: dict, atol: float = 1e-3) -> None:
        """In fp32, the upper layers fed the lower layers' output must give the whole model's
        log-probs: a model whose forward changes ``inputs_embeds`` or does more than run
        ``model.model.layers`` in turn cannot be cached."""
        whole, lower = pair_completion_logps(model, batch), self._lower(model, batch)
        with only_layers(model, self.n_layers):
            cached = pair_completion_logps(model, {**batch, "inputs_embeds": lower})
        gap = float((whole - cached).abs().max())
        if not gap <= atol:
            raise ConfigError(f"training.frozen_layers: {type(model).__name__} gives other log-probs from its "
                              f"lower layers' output than from its tokens (max gap {gap:.3g} nats): set "
                              f"training.frozen_layers to 0 for this model")

    def _keep(self, chunk: list[dict], batch: dict, hidden: torch.Tensor) -> None:
        prompt_width = max(len(e["prompt_ids"]) for e in chunk)
        for row, example in enumerate(chunk):
            lengths = tuple(len(example[k]) for k in ("prompt_ids", "chosen_ids", "rejected_ids"))
            spans = self._spans(batch, prompt_width, row, len(chunk), lengths)[:3]
            self.states[int(example["pair_index"])] = torch.cat([hidden[i, a:b] for i, a, b in spans]).clone()
            self.lengths[int(example["pair_index"])] = lengths

    @staticmethod
    def _spans(batch: dict, prompt_width: int, row: int, n: int,
               lengths: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        """Where pair ``row`` of a collated batch of ``n`` holds its prompt, chosen and rejected
        tokens, as (row, first column, end column); in the two-row layout (rows prompt + chosen,
        then prompt + rejected, every answer at the widest prompt's width) the prompt again, last."""
        p, c, r = lengths
        if "shared_prompt_widths" in batch:
            w_p, w_c, _ = (int(w) for w in batch["shared_prompt_widths"])
            return [(row, w_p - p, w_p), (row, w_p, w_p + c), (row, w_p + w_c, w_p + w_c + r)]
        w_p = prompt_width
        return [(row, w_p - p, w_p), (row, w_p, w_p + c), (n + row, w_p, w_p + r), (n + row, w_p - p, w_p)]

    def hidden_for(self, batch: dict) -> torch.Tensor:
        """Layer N's output for a collated batch, in its layout (zeros at padding, which no
        real token sees)."""
        indices = [int(i) for i in batch["pair_index"]]
        missing = [i for i in indices if i not in self.states]
        if missing:
            raise KeyError(f"pairs {missing[:5]} were not in the frozen-prefix cache: build it over every pair")
        first, n = self.states[indices[0]], len(indices)
        rows = n if "shared_prompt_widths" in batch else 2 * n
        out = first.new_zeros(rows, batch["input_ids"].shape[1], first.shape[-1])
        prompt_width = max(self.lengths[i][0] for i in indices)
        for row, index in enumerate(indices):
            (p, c, _), state = self.lengths[index], self.states[index]
            parts = (state[:p], state[p:p + c], state[p + c:], state[:p])  # one row per pair: no 4th span
            spans = self._spans(batch, prompt_width, row, n, self.lengths[index])
            for (i, a, b), part in zip(spans, parts, strict=False):
                out[i, a:b] = part
        return out
