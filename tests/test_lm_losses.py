"""DNO's loss against exact values and against TRL's DPOTrainer (an independent implementation)."""

import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from lm_helpers import save_toy_policy

from dnolab.lm.data import load_causal_lm, load_tokenizer
from dnolab.lm.losses import dno_loss, sequence_logps
from dnolab.lm.toy import ToyTask
from dnolab.lm.trainer import (
    PreferenceCollator,
    add_reference_logps,
    dno_batch_loss,
    tokenize_pairs,
)


def test_loss_is_log_two_when_policy_equals_reference():
    lp = torch.tensor([-3.0, -1.0, -7.5])
    for target in (1.0, torch.tensor([0.3, 0.5, 0.9])):
        loss = dno_loss(lp, lp - 1, lp, lp - 1, beta=0.7, target=target)
        torch.testing.assert_close(loss, torch.full((3,), math.log(2)))


def test_hard_target_is_the_dpo_loss_and_soft_target_is_eq8():
    pc, pr, rc, rr = (torch.tensor([v]) for v in (-2.0, -5.0, -3.0, -4.0))
    beta = 0.5
    delta = (-2.0 + 3.0) - (-5.0 + 4.0)  # = 2
    hard = dno_loss(pc, pr, rc, rr, beta)
    assert hard.item() == pytest.approx(-math.log(1 / (1 + math.exp(-beta * delta))))
    z = 0.8  # eq. 8: −[z log σ(βΔ) + (1 − z) log σ(−βΔ)]
    soft = dno_loss(pc, pr, rc, rr, beta, target=torch.tensor([z]))
    expected = -(z * math.log(1 / (1 + math.exp(-beta * delta)))
                 + (1 - z) * math.log(1 / (1 + math.exp(beta * delta))))
    assert soft.item() == pytest.approx(expected)


def test_soft_label_of_one_half_is_minimised_at_zero_margin():
    delta = torch.linspace(-3, 3, 61, requires_grad=True)
    loss = dno_loss(delta, torch.zeros_like(delta), torch.zeros_like(delta), torch.zeros_like(delta),
                    beta=1.0, target=0.5)
    assert delta[loss.argmin()].item() == pytest.approx(0.0, abs=1e-6)


def test_beta_must_be_positive():
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="beta must be > 0"):
        dno_loss(x, x, x, x, beta=0.0)


def test_sequence_logps_counts_only_completion_tokens():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 5)
    ids = torch.tensor([[1, 2, 3, 4]])
    mask = torch.tensor([[0, 0, 1, 1]])  # tokens 3 and 4 are the completion
    logp = torch.log_softmax(logits, -1)
    expected = logp[0, 1, 3] + logp[0, 2, 4]
    torch.testing.assert_close(sequence_logps(logits, ids, mask), expected.reshape(1))


def _pairs(n=12, seed=0):
    task, rng = ToyTask(), np.random.default_rng(seed)
    prompts = task.prompts(n, rng)
    chosen = [" " + task.teacher(p) for p in prompts]
    rejected = [" " + task.demonstration(p, rng) for p in prompts]
    return Dataset.from_dict({"prompt": prompts, "chosen": chosen, "rejected": rejected})


@pytest.mark.parametrize("share_prompt", [True, False], ids=["one-row-per-pair", "two-rows-per-pair"])
@pytest.mark.parametrize("nll_weight", [0.0, 0.5])
def test_matches_trl_dpo_trainer_loss_and_gradients(tmp_path, nll_weight, share_prompt):
    """Hard targets: DNO's step equals TRL's sigmoid DPO loss with reference π_t, to 1e-5; with
    an NLL term (RPO), TRL's sigmoid + sft losses weighted 1 and ``nll_weight``; in both of our
    collator's layouts."""
    from trl import DPOConfig, DPOTrainer

    policy_dir = save_toy_policy(tmp_path / "pi_t")
    tok = load_tokenizer(str(policy_dir))
    trl_model, our_model = load_causal_lm(str(policy_dir)), load_causal_lm(str(policy_dir))
    with torch.no_grad():  # move the policy away from π_t so the loss is not just log 2
        for p in our_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        trl_model.load_state_dict(our_model.state_dict())
    reference = load_causal_lm(str(policy_dir))  # π_t itself
    beta = 0.3
    pairs = _pairs()

    # TRL: reference log-probs precomputed from a frozen copy of π_t
    losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, nll_weight]} if nll_weight else {
        "loss_type": ["sigmoid"]}
    args = DPOConfig(output_dir=str(tmp_path / "trl"), beta=beta, **losses,
                     precompute_ref_log_probs=True, per_device_train_batch_size=len(pairs),
                     bf16=False, use_cpu=True, report_to="none", activation_checkpointing=False,
                     max_length=64, seed=0)
    trainer = DPOTrainer(model=trl_model, ref_model=reference, args=args, train_dataset=pairs,
                         processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    trl_loss = trainer.compute_loss(trainer.model, batch)
    trl_loss.backward()
    trl_grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}

    # ours: our tokenisation, our reference log-probs, our collator (prompts left-padded, the head
    # run on completion columns only) and our loss, on the same pairs
    ours = add_reference_logps(reference, tokenize_pairs(pairs, tok, chat=False), tok)
    rows = ours.select_columns(["prompt_ids", "chosen_ids", "rejected_ids", "ref_chosen_logps",
                                "ref_rejected_logps"]).to_list()
    collator = PreferenceCollator(tok.pad_token_id, share_prompt=share_prompt)
    ours_loss, _, _ = dno_batch_loss(our_model, collator(rows), beta, nll_weight=nll_weight)
    ours_loss.backward()
    assert ours_loss.item() == pytest.approx(trl_loss.item(), abs=1e-5)
    for name, p in our_model.named_parameters():
        torch.testing.assert_close(p.grad, trl_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    # and TRL's own right-padded batch through our loss (the full-logits path) gives the same
    our_model.zero_grad()
    again, _, _ = dno_batch_loss(our_model, dict(batch), beta, nll_weight=nll_weight)
    assert again.item() == pytest.approx(trl_loss.item(), abs=1e-5)

    # our tokenisation and our reference log-probs agree with TRL's for the same rows
    theirs = trainer.train_dataset
    by_prompt = {tuple(r["prompt_ids"]) + tuple(r["chosen_ids"]): r for r in ours}
    for r in theirs:
        mine = by_prompt[tuple(r["prompt_ids"]) + tuple(r["chosen_ids"])]
        assert mine["rejected_ids"] == r["rejected_ids"]
        assert mine["ref_chosen_logps"] == pytest.approx(r["ref_chosen_logps"], abs=1e-5)
        assert mine["ref_rejected_logps"] == pytest.approx(r["ref_rejected_logps"], abs=1e-5)


def test_lora_step_changes_each_linear_layer_by_a_rank_r_update_and_merges_back(tmp_path):
    """training.lora_rank = 4: the step starts at π_t (B = 0, loss log 2), moves each linear
    layer's weight by at most a rank-4 matrix (B·A), leaves embeddings and norms alone, and
    returns a plain model of the same class and parameter names (the adapters merged in)."""
    from dnolab.lm.trainer import TrainingConfig, train_on_pairs

    policy_dir = save_toy_policy(tmp_path / "pi_t")
    tok, model = load_tokenizer(str(policy_dir)), load_causal_lm(str(policy_dir))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = add_reference_logps(model, tokenize_pairs(_pairs(64), tok, chat=False), tok)
    config = TrainingConfig(beta=0.5, batch_size=16, learning_rate=1e-2, lora_rank=4)
    trained, steps = train_on_pairs(model, tok, data, config, str(tmp_path / "out"), seed=0)
    after = trained.state_dict()
    assert type(trained) is type(load_causal_lm(str(policy_dir))) and set(after) == set(before)
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-6) and steps[-1]["loss"] < math.log(2)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith("proj.weight") for k in changed), sorted(changed)
    assert {k.split(".")[-2] for k in changed} == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                    "gate_proj", "up_proj", "down_proj"}
    for k in changed:
        assert torch.linalg.matrix_rank(after[k] - before[k], rtol=1e-4) <= 4, k


def test_first_training_step_loss_is_log_two(tmp_path):
    from dnolab.lm.trainer import TrainingConfig, train_on_pairs

    policy_dir = save_toy_policy(tmp_path / "pi_t")
    tok, model = load_tokenizer(str(policy_dir)), load_causal_lm(str(policy_dir))
    data = add_reference_logps(model, tokenize_pairs(_pairs(64), tok, chat=False), tok)
    data = data.add_column("target", [0.7] * len(data))  # soft labels: still log 2 at step 0
    _, steps = train_on_pairs(model, tok, data, TrainingConfig(beta=0.5, batch_size=16),
                              str(tmp_path / "out"), seed=0)
    losses = [s["loss"] for s in steps]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-6)
    assert len(losses) == 4 and losses[-1] != pytest.approx(math.log(2), abs=1e-6)
    # at the first step π = π_t: every log-ratio, the margin β·Δ and the accuracy (β·Δ > 0) are 0
    first = steps[0]
    for key in ("margin", "accuracy", "chosen_logratio", "rejected_logratio"):
        assert first[key] == pytest.approx(0.0, abs=1e-6), key
    assert steps[-1]["accuracy"] > 0 and steps[-1]["margin"] != pytest.approx(0.0, abs=1e-6)


def test_a_bf16_step_on_a_cpu_starts_at_its_reference_scored_in_bf16(tmp_path):
    """training.bf16 = true on a CPU: the Trainer autocasts the step to bfloat16, so the
    reference log-probs must be scored under the same autocast (reference_logps does): then the
    first loss is log 2 and every log-ratio 0, as in fp32; scored in fp32 they would not be. (On
    this tiny model exactly; on SmolLM2 bf16 rounding also depends on how a batch is padded, and
    the first loss is only near log 2: benchmarks/results/cpu_bf16.md.)"""
    from dnolab.lm.trainer import TrainingConfig, reference_logps, train_on_pairs, uses_bf16

    policy_dir = save_toy_policy(tmp_path / "pi_t")
    tok, model = load_tokenizer(str(policy_dir)), load_causal_lm(str(policy_dir))
    config = TrainingConfig(beta=0.5, batch_size=16, bf16=True, reference_batch_size=16)
    assert uses_bf16(config, cuda=False) and not uses_bf16(TrainingConfig(), cuda=False)
    pairs = tokenize_pairs(_pairs(64), tok, chat=False)
    fp32 = add_reference_logps(model, pairs, tok)["ref_chosen_logps"]
    data = reference_logps(pairs, "previous", model, None, tok, config, alpha=0.0)
    assert max(abs(a - b) for a, b in zip(fp32, data["ref_chosen_logps"], strict=True)) > 1e-3  # bf16 differs
    _, steps = train_on_pairs(model, tok, data, config, str(tmp_path / "out"), seed=0)
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert steps[0]["chosen_logratio"] == pytest.approx(0.0, abs=1e-6)
    assert steps[-1]["loss"] < math.log(2)
