"""The real-model path of notebook 06: the head run on completion columns only, one row per
pair, fluency under a reference model, the ifeval world's prompt split, and the real model's bad
inputs."""

import copy

import numpy as np
import pytest
import torch
from lm_helpers import save_tiny_chat_model, save_toy_policy

from dnolab.lm.config import load_config
from dnolab.lm.data import check_prompt_lengths, encode_prompt, load_causal_lm, load_tokenizer
from dnolab.lm.errors import DNOInputError
from dnolab.lm.evaluation import mean_token_logps
from dnolab.lm.ifeval import HELDOUT_KINDS, constraints_met, lapses, parse_constraints
from dnolab.lm.losses import completion_logps, sequence_logps
from dnolab.lm.trainer import PreferenceCollator


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = save_toy_policy(tmp_path_factory.mktemp("toy") / "pi", seed=3)
    return load_causal_lm(str(path)), load_tokenizer(str(path))


def _gpt2(tok):
    """A tiny GPT-2: absolute position embeddings, so left padding must shift its positions."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=1, n_head=2)).eval()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_the_head_on_completion_columns_gives_the_full_logits_answer(toy, kind):
    """Aligned rows (prompts left-padded) use logits_to_keep; the same rows through the full
    logits, and each row alone without padding, give the same log-probabilities (for RoPE
    models and for absolute positions alike)."""
    model, tok = toy
    model = model if kind == "llama" else _gpt2(tok)
    rows = [(tok("sort 3 1 =")["input_ids"], tok(" 1 3 .", add_special_tokens=False)["input_ids"]),
            (tok("sort 9 8 7 6 5 =")["input_ids"], tok(" 5 6", add_special_tokens=False)["input_ids"] + [1])]
    batch = PreferenceCollator(tok.pad_token_id).rows(rows)
    assert (batch["completion_mask"].int().argmax(1) == batch["completion_mask"].int().argmax(1)[0]).all()
    with torch.no_grad():
        fast = completion_logps(model, batch)
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     position_ids=batch["position_ids"]).logits
        slow = sequence_logps(full, batch["input_ids"], batch["completion_mask"])
        # and each row alone, unpadded: padding changes nothing
        alone = [sequence_logps(model(torch.tensor([p + c])).logits, torch.tensor([p + c]),
                                torch.tensor([[0] * len(p) + [1] * len(c)])) for p, c in rows]
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, torch.cat(alone), atol=1e-5, rtol=1e-5)


def _pair_rows(tok):
    """Pairs with prompts of different lengths, chosen answers longer and shorter than the
    rejected ones, and cut answers (no end-of-sequence token)."""
    def ids(text):
        return tok(text, add_special_tokens=False)["input_ids"]

    def ended(text):
        return [*ids(text), tok.eos_token_id]

    return [{"prompt_ids": tok("sort 3 1 =")["input_ids"], "chosen_ids": ended(" 1 3 ."),
             "rejected_ids": ended(" 3 1 7 7 7 .")},
            {"prompt_ids": tok("sort 9 8 7 6 5 =")["input_ids"], "chosen_ids": ended(" 5 6 7 8 9 ."),
             "rejected_ids": ids(" 5")},
            {"prompt_ids": tok("sort 4 =")["input_ids"], "chosen_ids": ids(" 4 4"), "rejected_ids": ended(" 2 .")}]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_one_row_per_pair_gives_the_two_row_log_probs_and_gradients(toy, kind, attention):
    """The shared-prompt layout (prompt | chosen | rejected under a 4D mask) gives each answer
    the log-probability, and the loss the gradient, of the two-row layout, whose values the test
    above ties to unpadded rows; for RoPE and absolute positions, bool (sdpa) and additive
    (eager) masks."""
    from dnolab.lm.losses import pair_completion_logps
    from dnolab.lm.trainer import chosen_token_counts, collator_for

    model, tok = toy
    model = copy.deepcopy(model) if kind == "llama" else _gpt2(tok)
    model.set_attn_implementation(attention)
    rows = _pair_rows(tok)
    shared, two = collator_for(model, tok.pad_token_id)(rows), PreferenceCollator(tok.pad_token_id)(rows)
    assert "shared_prompt_widths" in shared and shared["input_ids"].numel() < two["input_ids"].numel()
    torch.testing.assert_close(chosen_token_counts(shared), chosen_token_counts(two))
    results = []
    for batch in (shared, two):
        model.zero_grad()
        logps = pair_completion_logps(model, batch)
        chosen, rejected = logps.chunk(2)
        (torch.nn.functional.logsigmoid(0.7 * (chosen - rejected)).sum()).backward()
        results.append((logps.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (ours, ours_grads), (theirs, their_grads) = results
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    for name, grad in ours_grads.items():
        torch.testing.assert_close(grad, their_grads[name], atol=1e-6, rtol=1e-4, msg=name)


def test_models_whose_attention_takes_no_custom_mask_get_two_rows_per_pair(toy):
    from types import SimpleNamespace

    from dnolab.lm.trainer import collator_for

    model, tok = toy
    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    assert not collator_for(flash, tok.pad_token_id).share_prompt
    assert collator_for(model, tok.pad_token_id).share_prompt
    batch = collator_for(flash, tok.pad_token_id)(_pair_rows(tok))
    assert "shared_prompt_widths" not in batch and batch["input_ids"].shape[0] == 6


def test_fluency_is_the_mean_token_log_probability(toy):
    model, tok = toy
    prompts, answers = ["sort 3 1 =", "sort 2 2 ="], ["1 3 .", "2 2 !"]
    got = mean_token_logps(model, tok, prompts, answers, finished=[True, False], chat=False)
    for prompt, answer, ended, value in zip(prompts, answers, [True, False], got, strict=True):
        p = encode_prompt(tok, prompt, chat=False)
        c = tok(answer, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if ended else [])
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([p + c])).logits[0].float(), -1)
        expected = np.mean([logp[len(p) - 1 + k, token].item() for k, token in enumerate(c)])
        assert value == pytest.approx(expected, abs=1e-5)


def test_a_chat_answers_fluency_counts_the_token_its_template_ends_it_with(tmp_path):
    """A finished chat answer is scored up to and with the template's end of turn (``<|end|>``
    here; the tokenizer's EOS is ``<eos>``), the tokens the template renders for it."""
    path = save_tiny_chat_model(tmp_path / "chat")
    model, tok = load_causal_lm(str(path)), load_tokenizer(str(path))
    user = [{"role": "user", "content": "Hi"}]
    got = mean_token_logps(model, tok, ["Hi"], ["Red and blue."], finished=[True], chat=True)[0]
    p = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=True)["input_ids"]
    whole = tok.apply_chat_template([*user, {"role": "assistant", "content": "Red and blue."}],
                                    tokenize=True)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    expected = np.mean([logp[k - 1, whole[k]].item() for k in range(len(p), len(whole))])
    assert got == pytest.approx(expected, abs=1e-5)


def test_the_ifeval_world_keeps_held_out_constraint_kinds_out_of_training(tmp_path):
    from dnolab.lm.loop import DNORun

    config = load_config("smollm2_ifeval", {"output_dir": str(tmp_path), "eval.prompts": 120})
    run = DNORun(config, show_progress=False)  # splits the prompts; loads no model
    def kinds(prompt):
        return {c.kind for c in parse_constraints(prompt)}

    heldout_in_eval = [p for p in run.parts["eval"].prompts if kinds(p) & set(HELDOUT_KINDS)]
    assert len(heldout_in_eval) >= 10
    for name, part in run.parts.items():
        if name != "eval":
            assert not any(kinds(p) & set(HELDOUT_KINDS) for p in part.prompts), name
    every = [p for part in run.parts.values() for p in part.prompts]
    assert len(every) == len(set(every))  # disjoint


@pytest.mark.parametrize("teacher", ["template", "corrector"])
def test_the_loop_takes_its_gold_answers_from_the_configured_teacher(tmp_path, monkeypatch, teacher):
    import dnolab.lm.loop as loop
    import dnolab.lm.sampling as sampling

    config = load_config("smollm2_ifeval", {"output_dir": str(tmp_path), "prompts.teacher": teacher})
    run = loop.DNORun(config, show_progress=False)  # loads no model
    part = run.parts["iter_01"]
    answer = "Many people drink it, and some grow it at home. Its history goes back a long way, and the"
    # only the model is stubbed (sample_responses, under the real sample_sharded): the teacher gets what
    # the loop really passes it
    monkeypatch.setattr(sampling, "sample_responses", lambda _m, _t, prompts, k, *a, **kw: (
        {i: [answer] * k for i in range(len(prompts))}, {i: [False] * k for i in range(len(prompts))}))
    rows = run.sample(None, None, part, 1)
    gold = [r["gold"] for r in rows]
    if teacher == "template":
        assert gold == part.gold
        return
    kept = [g for g in gold if "many people drink it" in g.lower()]
    assert len(kept) > 0.9 * len(gold)  # the student's words, corrected
    for row in rows:
        ok = constraints_met(row["prompt"], row["gold"])
        failed = {c.kind for c, good in zip(parse_constraints(row["prompt"]), ok, strict=True) if not good}
        assert failed <= lapses(row["prompt"]) and "and the" not in row["gold"]  # the cut tail is gone


def test_a_prompt_longer_than_the_real_models_context_is_refused():
    tok = load_tokenizer("smollm2-135m-instruct")
    model = load_causal_lm("smollm2-135m-instruct")
    long = "Tell me about rivers. " + "Rivers are long. " * 3000
    with pytest.raises(DNOInputError, match=r"prompt #1 has \d+ tokens; with max_new_tokens=48 that exceeds the "
                                            r"model's context of 8192 tokens"):
        check_prompt_lengths(tok, ["Tell me about rivers.", long], True, 48, model)
