"""DNO's loss: one binary cross-entropy that covers Algorithm 1 and Algorithm 2.

With Δ = log π(y₁|x)/π_t(y₁|x) − log π(y₂|x)/π_t(y₂|x) (reference = the previous iterate π_t),

    loss = BCE-with-logits(β·Δ, target)
         = −[target·log σ(β·Δ) + (1 − target)·log σ(−β·Δ)].

* target = σ(r_t(y₁) − r_t(y₂)), a soft label: Algorithm 1's regression step, paper eq. 8
  (η = β).
* target = 1 for a large-margin pair (y₁ = y⁺, y₂ = y⁻): Algorithm 2's contrastive step,
  paper eq. 13, which is the DPO loss with reference π_t.

At β·Δ = 0 (the policy still equals its reference) the loss is log 2 for every target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Σ over completion tokens of log π(token | prefix), one value per sequence.

    ``logits[:, t]`` predicts ``input_ids[:, t + 1]``; only positions whose target token is
    a completion token count.
    """
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:]
    token_logps = torch.gather(logps, 2, targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * completion_mask[:, 1:].to(token_logps.dtype)).sum(dim=1)


def _token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log π(target) per position, from logits aligned with their targets (fp32 softmax)."""
    return -F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none").view(targets.shape)


def completion_logps(model, batch: dict) -> torch.Tensor:
    """Σ log π(token | prefix) over each row's completion tokens, as :func:`sequence_logps`.

    When every row's completion starts at the same column (the layout of
    ``dnolab.lm.trainer.PreferenceCollator``: prompts left-padded, completions right-padded),
    the language-model head runs only on the completion columns (``logits_to_keep``): with a
    49k-token vocabulary that head is a fifth of a small model's work per position, and prompt
    positions need none of it. Any other layout (e.g. TRL's right-padded batches) gets the
    full logits.
    """
    ids, mask = batch["input_ids"], batch["completion_mask"]
    kwargs = {"attention_mask": batch["attention_mask"], "use_cache": False, **_model_input(batch)}
    if "position_ids" in batch:
        kwargs["position_ids"] = batch["position_ids"]
    first = mask.int().argmax(dim=1)  # each row's first completion column
    has_completion = mask.any(dim=1)
    start = int(first[has_completion].min()) if has_completion.any() else ids.shape[1]
    if has_completion.any() and bool((first[has_completion] == start).all()) and start > 0:
        width = ids.shape[1] - start  # completion columns
        logits = model(logits_to_keep=width + 1, **kwargs).logits[:, :width]
        token_logps = _token_logps(logits, ids[:, start:])
        return (token_logps * mask[:, start:].to(token_logps.dtype)).sum(dim=1)
    return sequence_logps(model(**kwargs).logits, ids, mask)


def _model_input(batch: dict) -> dict:
    """The token ids, or hidden states given in their place (``inputs_embeds``: the output of
    frozen lower layers, ``dnolab.lm.frozen``); the ids still name the targets."""
    if "inputs_embeds" in batch:
        return {"inputs_embeds": batch["inputs_embeds"]}
    return {"input_ids": batch["input_ids"]}


def shared_prompt_logps(model, batch: dict) -> torch.Tensor:
    """[chosen; rejected] sequence log-probs of pair rows that hold each prompt once.

    A row is ``prompt | chosen | rejected`` in three column blocks of widths
    ``shared_prompt_widths`` = (W_p, W_c, W_r), the same in every row (prompts left-padded, each
    answer right-padded), under a 4D ``attention_mask`` in which the rejected answer sees the
    prompt but not the chosen one, and positions restart after the prompt for each answer. Every
    token then sees exactly the prefix it sees in a row ``prompt + answer`` of its own, so the
    values are those of :func:`completion_logps` on the two-row layout, at the cost of one prompt
    instead of two. The head runs on the W_c + W_r predicting columns only: column W_p − 1 (the
    prompt's last token) predicts both answers' first token.
    """
    ids, mask = batch["input_ids"], batch["completion_mask"]
    w_p, w_c, w_r = (int(w) for w in batch["shared_prompt_widths"])
    # the token in column w_p + c is predicted from column w_p + c − 1, except the rejected
    # answer's first (c = w_c), predicted from the prompt's last column
    predicting = w_p - 1 + torch.arange(w_c + w_r, device=ids.device)
    predicting[w_c:w_c + 1] = w_p - 1
    logits = model(**_model_input(batch), attention_mask=batch["attention_mask"], position_ids=batch["position_ids"],
                   logits_to_keep=predicting, use_cache=False).logits
    token_logps = _token_logps(logits, ids[:, w_p:])
    token_logps = token_logps * mask[:, w_p:].to(token_logps.dtype)
    return torch.cat([token_logps[:, :w_c].sum(dim=1), token_logps[:, w_c:].sum(dim=1)])


def pair_completion_logps(model, batch: dict) -> torch.Tensor:
    """[chosen; rejected] log-probs of a collated pair batch, in either layout of
    ``dnolab.lm.trainer.PreferenceCollator``."""
    if "shared_prompt_widths" in batch:
        return shared_prompt_logps(model, batch)
    return completion_logps(model, batch)


def dno_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float, target: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Per-pair loss BCE-with-logits(β·Δ, target) (paper eq. 8; eq. 13 when target = 1)."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    delta = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    target = torch.as_tensor(target, dtype=delta.dtype, device=delta.device).expand_as(delta)
    return F.binary_cross_entropy_with_logits(beta * delta, target, reduction="none")


def sppo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
              chosen_win_rate, rejected_win_rate, beta: float) -> torch.Tensor:
    """SPPO's per-pair loss (Wu et al. 2024, arXiv:2405.00675, as in uclaml/SPPO's trainer):

        ½[(h_w − (P̂_w − ½)/β)² + (h_l − (P̂_l − ½)/β)²],   h = log π(y|x)/π_t(y|x),

    a squared regression of each response's log-ratio toward η·(its estimated win rate
    against π_t − ½) with η = 1/β, the same soft policy iteration target as DNO (log Z ≈ η/2).
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    h_w = policy_chosen_logps - ref_chosen_logps
    h_l = policy_rejected_logps - ref_rejected_logps
    return 0.5 * ((h_w - (chosen_win_rate - 0.5) / beta) ** 2 + (h_l - (rejected_win_rate - 0.5) / beta) ** 2)
