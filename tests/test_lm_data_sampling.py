"""Loading, prompt sets, encoding and sampling: round trips through from_pretrained and bad input."""

import functools
import json

import numpy as np
import pytest
from lm_helpers import (
    byte_level_tokenizer,
    save_tiny_chat_model,
    save_toy_policy,
    write_prompt_file,
)

from dnolab.lm.data import (
    DNOInputError,
    PromptSet,
    check_prompt_lengths,
    encode_prompt,
    end_of_turn_id,
    load_causal_lm,
    load_prompt_dataset,
    load_tokenizer,
    split_prompts,
)
from dnolab.lm.sampling import (
    SamplingConfig,
    is_degenerate,
    repeated_ngram_share,
    sample_responses,
    top_p_filter,
)


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return save_toy_policy(tmp_path_factory.mktemp("toy") / "policy")


def test_toy_tokenizer_and_model_round_trip_through_auto_classes(toy_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(toy_dir)
    ids = tok("sort 3 1 2 =")["input_ids"]
    assert tok.decode(ids) == "sort 3 1 2 =" and tok.padding_side == "left"
    assert tok(" 1 2 3 !<eos>")["input_ids"][-1] == tok.eos_token_id  # EOS splits off
    model = AutoModelForCausalLM.from_pretrained(toy_dir)
    assert type(model).__name__ == "LlamaForCausalLM" and model.num_parameters() == 132_544


def test_offline_the_model_keeps_its_own_layers(toy_dir, monkeypatch):
    """Hub kernels cannot be fetched offline (a GPU's `model.train()` then fails in the trainer):
    offline, loading turns them off; online, transformers' default stands."""
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_causal_lm(str(toy_dir)).use_kernels is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    default = AutoModelForCausalLM.from_pretrained(toy_dir).use_kernels
    assert load_causal_lm(str(toy_dir)).use_kernels is default


def test_sampling_is_the_same_whatever_the_sharding(toy_dir):
    tok, model = load_tokenizer(str(toy_dir)), load_causal_lm(str(toy_dir))
    prompts = [f"sort {a} {b} {c} =" for a, b, c in np.random.default_rng(0).integers(0, 10, (10, 3))]
    cfg = SamplingConfig(batch_size=4, max_new_tokens=6)
    full = sample_responses(model, tok, prompts, 3, cfg, seed=5, show_progress=False)
    part0 = sample_responses(model, tok, prompts, 3, cfg, seed=5, batches=[0, 2], show_progress=False)
    part1 = sample_responses(model, tok, prompts, 3, cfg, seed=5, batches=[1], show_progress=False)
    assert sorted(full) == list(range(10)) and all(len(v) == 3 for v in full.values())
    assert {**part0, **part1} == full
    assert sample_responses(model, tok, prompts, 3, cfg, seed=6, show_progress=False) != full


def test_each_sample_says_whether_it_ended_or_was_cut(toy_dir):
    """With one new token, an answer ended iff that token was end-of-sequence (which decodes to
    nothing); a word means it was cut. The untrained policy draws both."""
    tok, model = load_tokenizer(str(toy_dir)), load_causal_lm(str(toy_dir))
    prompts = [f"sort {d} 1 =" for d in range(10)]
    texts, finished = sample_responses(model, tok, prompts, 30, SamplingConfig(max_new_tokens=1), seed=0,
                                       show_progress=False, with_finished=True)
    flat = [(t, f) for i in texts for t, f in zip(texts[i], finished[i], strict=True)]
    assert all(t == "" for t, f in flat if f) and all(not f for t, f in flat if t)
    assert any(f for _, f in flat) and any(not f for _, f in flat)


def _nucleus_float64(logits, top_p):
    """Reference nucleus by a float64 sort in numpy: a token stays when the tokens ranked above
    it hold less than top_p of the probability."""
    keep = np.zeros(logits.shape, dtype=bool)
    for row, values in enumerate(logits.double().numpy()):
        probs = np.exp(values - values.max())
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")
        above = np.cumsum(probs[order]) - probs[order]
        keep[row, order] = above < top_p
    return keep


@pytest.mark.parametrize("candidates", [1024, 8], ids=["few-candidates-suffice", "full-sort-fallback"])
@pytest.mark.parametrize("top_p", [0.5, 0.95])
def test_top_p_filter_keeps_the_nucleus_a_float64_sort_finds(candidates, top_p):
    """Flat rows (nuclei of thousands of tokens, beyond the candidates) and peaked ones, at
    SmolLM2's vocabulary size: the kept set is the float64 reference's, and kept logits are
    unchanged."""
    import torch

    gen = torch.Generator().manual_seed(0)
    logits = torch.cat([torch.randn(64, 49152, generator=gen) * scale for scale in (1.4, 4.3, 8.0)])
    out = top_p_filter(logits, top_p, candidates=candidates)
    kept = ~torch.isinf(out)
    np.testing.assert_array_equal(kept.numpy(), _nucleus_float64(logits, top_p))
    assert torch.equal(out[kept], logits[kept])
    assert top_p_filter(logits, 1.0) is logits


def test_top_p_filter_agrees_with_transformers_top_p_warper():
    """transformers' TopPLogitsWarper (a float32 ascending sort) on well-separated logits, where
    rounding cannot move a token across the edge."""
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    logits = torch.randn(64, 2000, generator=torch.Generator().manual_seed(1)) * 6
    ours, theirs = top_p_filter(logits, 0.9), TopPLogitsWarper(0.9)(None, logits)
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    assert 1 < (~torch.isinf(ours)).sum(1).float().mean() < 50  # a real cut, not all or one


@pytest.mark.parametrize("model_has_cache", [True, False], ids=["shared-prompt-cache", "model-without-cache"])
def test_sampling_draws_what_generate_draws_with_its_own_temperature_and_top_p(toy_dir, model_has_cache):
    """Our warper replaces generate's temperature and top-p warpers, the tokens every prompt
    starts with are encoded once for the batch and each prompt once for its K samples: the same
    seed gives the same samples as a plain generate of left-padded prompts with temperature,
    top_p and num_return_sequences (which checks the warpers' order: top-p must see logits
    already divided by the temperature; and the shared cache of prompts of different lengths,
    padded after their shared start, with their positions). A model that returns no cache gets
    generate's K copies instead."""
    import torch

    tok, model = load_tokenizer(str(toy_dir)), load_causal_lm(str(toy_dir))
    prompts = ["sort " + " ".join(str((d * 7 + j) % 10) for j in range(d + 1)) + " =" for d in range(6)]
    width = max(len(tok(p)["input_ids"]) for p in prompts)
    cfg = SamplingConfig(temperature=0.4, top_p=0.7, max_new_tokens=6, batch_size=6)
    shapes = []
    hook = model.model.register_forward_hook(lambda module, args, kwargs, out: shapes.append(
        tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    if not model_has_cache:  # the prompts' forward passes return no cache (nor reach the hook);
        forward = model.forward  # wraps keeps forward's signature, which generate reads for position_ids
        model.forward = functools.wraps(forward)(lambda **kw: forward(**kw) if kw["input_ids"].shape[0] == 24 else {})
    ours = sample_responses(model, tok, prompts, 4, cfg, seed=3, show_progress=False)
    hook.remove()
    if model_has_cache:  # "sort" once, then each prompt's own tokens once, then one token a step
        assert shapes[:2] == [(1, 1), (6, width - 2)] and set(shapes[2:]) == {(24, 1)}
    else:
        del model.forward
        assert shapes[0] == (24, width) and set(shapes[1:]) == {(24, 1)}  # generate encodes K copies
    batch = tok(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(3 * 1_000_003)  # sample_responses seeds batch b with seed * 1_000_003 + b
    out = model.generate(**batch, do_sample=True, temperature=0.4, top_p=0.7, top_k=0, max_new_tokens=6,
                         num_return_sequences=4, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    texts = [t.strip() for t in tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)]
    assert [ours[i] for i in range(6)] == [texts[4 * i:4 * i + 4] for i in range(6)]
    assert len({t for v in ours.values() for t in v}) > 6  # the samples do vary


@pytest.mark.parametrize("hub_default", [{"repetition_penalty": 3.0}, {"no_repeat_ngram_size": 1},
                                         {"min_new_tokens": 4}, {"min_p": 0.3}], ids=lambda d: next(iter(d)))
def test_samples_follow_the_config_not_the_models_own_decoding_defaults(toy_dir, hub_default):
    """generate fills every setting it is not given from the model's generation_config.json,
    where Hub chat models keep their own decoding (a repetition penalty, min-p, a minimum
    length). DNO's samples must come from π_t as the config states, so such a file changes
    nothing, and the model keeps it."""
    from transformers import GenerationConfig

    tok, model = load_tokenizer(str(toy_dir)), load_causal_lm(str(toy_dir))
    prompts = [f"sort {a} {b} {c} =" for a, b, c in np.random.default_rng(1).integers(0, 10, (4, 3))]
    cfg = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=8, batch_size=4)
    plain = sample_responses(model, tok, prompts, 8, cfg, seed=3, show_progress=False)
    hub_like = GenerationConfig(**hub_default)
    model.generation_config = hub_like
    assert sample_responses(model, tok, prompts, 8, cfg, seed=3, show_progress=False) == plain
    assert model.generation_config is hub_like


# Templates shaped like real ones, on the test tokenizer's special tokens: what follows an
# assistant message is its end of turn (Gemma: <end_of_turn>, whose tokenizer's EOS is <eos>),
# the EOS itself (Mistral's </s>), or plain text, where only the EOS is left.
TURN_TEMPLATES = {
    "end of turn after the answer": ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n"
                                     "{% endfor %}", "<|end|>"),
    "EOS after the answer": ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}", "<eos>"),
    "no special token after the answer": ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                                          "{% endfor %}", "<eos>"),
    "a template that refuses an assistant turn": ("{{ raise_exception('users only') if messages|length > 1 }}"
                                                   "<|user|>{{ messages[0]['content'] }}", "<eos>"),
}


@pytest.mark.parametrize("name", TURN_TEMPLATES)
def test_an_answer_ends_with_the_token_its_chat_template_writes_after_it(name):
    template, expected = TURN_TEMPLATES[name]
    tok = byte_level_tokenizer(chat_template=template)
    assert end_of_turn_id(tok, chat=True) == tok.convert_tokens_to_ids(expected)
    assert end_of_turn_id(tok, chat=False) == tok.eos_token_id


def _always_emits(model, token_id: int):
    """Make a tiny model put (almost) all probability on one token, whatever the input."""
    def boost(module, args, out):
        out = out.clone()
        out[..., token_id] += 100.0
        return out

    model.lm_head.register_forward_hook(boost)


@pytest.mark.parametrize("stop", ["chat template's end of turn", "model's own eos_token_id list"])
def test_a_chat_model_stops_at_the_end_of_its_turn_and_the_answer_counts_as_finished(tmp_path, stop):
    """A chat model ends its turn with the template's token or one of its generation_config's
    ``eos_token_id`` list (Llama 3 Instruct names three), not always the tokenizer's EOS: there
    sampling must stop and flag the answer finished, or every answer would run to the limit."""
    path = save_tiny_chat_model(tmp_path / "chat")
    tok, model = load_tokenizer(str(path)), load_causal_lm(str(path))
    if stop == "chat template's end of turn":
        token = tok.convert_tokens_to_ids("<|end|>")
    else:
        token = tok(" sea", add_special_tokens=False)["input_ids"][-1]
        model.generation_config.eos_token_id = [tok.eos_token_id, token]
    _always_emits(model, token)
    cfg = SamplingConfig(max_new_tokens=8, batch_size=2)
    for sample in (sample_responses, functools.partial(sample_responses, reference=load_causal_lm(str(path)),
                                                         alpha=0.5)):
        texts, finished = sample(model, tok, ["Hi", "Name a colour"], 2, cfg, seed=0, chat=True,
                                 show_progress=False, with_finished=True)
        assert all(all(f) for f in finished.values()), finished
        assert all(t in {"", "sea"} for ts in texts.values() for t in ts), texts


def test_prompt_rows_share_the_common_start_and_end_every_prompt_in_the_last_column():
    from dnolab.lm.sampling import prompt_rows

    ids, mask, shared = prompt_rows([[5, 6, 7, 8], [5, 6, 9], [5, 6, 7]], pad=0)
    assert shared == 2  # the third prompt keeps one token of its own, so not 3
    assert ids.tolist() == [[5, 6, 7, 8], [5, 6, 0, 9], [5, 6, 0, 7]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 1], [1, 1, 0, 1]]
    assert prompt_rows([[5], [5]], pad=0)[2] == 0 and prompt_rows([[1, 2], [3, 2]], pad=0)[2] == 0


@pytest.mark.parametrize("mixture", [False, True], ids=["generate", "geometric-mixture"])
def test_sampling_bf16_runs_the_model_in_bf16_and_keeps_its_weights_fp32(toy_dir, mixture):
    """sampling.bf16: the forward passes of sampling run under bfloat16 autocast (what makes them
    faster on an AMX CPU); the weights themselves, which training goes on to update, stay fp32."""
    import torch

    tok, model = load_tokenizer(str(toy_dir)), load_causal_lm(str(toy_dir))
    seen = []
    model.lm_head.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    extra = {"reference": load_causal_lm(str(toy_dir)), "alpha": 0.5} if mixture else {}
    for bf16 in (False, True):
        seen.clear()
        sample_responses(model, tok, ["sort 3 1 2 ="], 2, SamplingConfig(max_new_tokens=3, bf16=bf16), seed=0,
                         show_progress=False, **extra)
        assert seen and set(seen) == {torch.bfloat16 if bf16 else torch.float32}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_chat_prompts_use_the_template(tmp_path):
    path = save_tiny_chat_model(tmp_path / "chat")
    tok = load_tokenizer(str(path))
    ids = encode_prompt(tok, "Hi", chat=True)
    assert tok.decode(ids) == "<|user|>Hi<|end|><|assistant|>"
    assert encode_prompt(tok, "Hi", chat=False) == tok("Hi")["input_ids"]


def test_repeated_ngrams_flag_degenerate_samples():
    assert repeated_ngram_share("a b c a b c a b c") == pytest.approx(4 / 7)
    assert is_degenerate("the cat the cat the cat the cat the cat")
    assert not is_degenerate("1 2 3 !") and not is_degenerate("a clear and varied answer to the question asked")


def test_prompt_file_with_chat_gold_column(tmp_path):
    prompts = load_prompt_dataset(str(write_prompt_file(tmp_path / "p.jsonl", 10)), gold_column="chosen")
    assert len(prompts) == 10
    for prompt, gold in zip(prompts.prompts, prompts.gold, strict=True):  # shuffled, but still paired
        assert gold == f"A good answer {prompt.split(':')[0].split()[1]}."
    assert prompts.prompts != sorted(prompts.prompts, key=lambda p: int(p.split(":")[0].split()[1]))
    fewer = load_prompt_dataset(str(tmp_path / "p.jsonl"), gold_column="chosen", limit=4)
    assert fewer.prompts == prompts.prompts[:4]  # a larger limit only adds prompts at the end
    parts = split_prompts(prompts, {"a": 4, "b": 5})
    assert not set(parts["a"].prompts) & set(parts["b"].prompts)
    with pytest.raises(DNOInputError, match="needs 12 distinct prompts"):
        split_prompts(prompts, {"a": 6, "b": 6})


def test_later_parts_do_not_move_earlier_ones_and_eval_only_prompts_stay_in_eval():
    pool = PromptSet([f"p{i}" for i in range(20)], eval_only=[i % 4 == 0 for i in range(20)])
    short = split_prompts(pool, {"eval": 4, "validation": 3, "iter_01": 3})
    longer = split_prompts(pool, {"eval": 4, "validation": 3, "iter_01": 3, "iter_02": 3})
    for name in short:  # adding an iteration changes nothing before it
        assert short[name].prompts == longer[name].prompts
    # p0 is eval-only (in eval); p4, p8, p12 are eval-only and skipped by the other parts
    assert longer["eval"].prompts == ["p0", "p1", "p2", "p3"]
    assert longer["validation"].prompts == ["p5", "p6", "p7"]
    assert longer["iter_01"].prompts == ["p9", "p10", "p11"]
    assert longer["iter_02"].prompts == ["p13", "p14", "p15"]
    with pytest.raises(DNOInputError, match="usable ones"):
        split_prompts(pool, {"eval": 4, "validation": 13})  # 16 left, of which 4 are eval-only


# --- bad input: each names the problem and the fix ------------------------------------------------

def test_empty_prompt_set(tmp_path):
    with pytest.raises(DNOInputError, match="prompt set is empty"):
        PromptSet([])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DNOInputError):
        load_prompt_dataset(str(empty))
    with pytest.raises(DNOInputError, match="non-empty strings"):
        PromptSet(["ok", "   "])


def test_missing_columns(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"question": "hi"}) + "\n")
    with pytest.raises(DNOInputError, match=r"no column 'prompt'.*\['question'\].*prompt_column"):
        load_prompt_dataset(str(path))


def test_tokenizer_without_pad_token(tmp_path):
    path = save_tiny_chat_model(tmp_path / "nopad", with_pad=False)
    with pytest.raises(DNOInputError, match=r"no pad token.*pad_with_eos"):
        load_tokenizer(str(path))
    assert load_tokenizer(str(path), pad_with_eos=True).pad_token == "<eos>"


def test_prompts_longer_than_the_context(tmp_path):
    path = save_tiny_chat_model(tmp_path / "short", max_positions=16)
    tok, model = load_tokenizer(str(path)), load_causal_lm(str(path))
    check_prompt_lengths(tok, ["Hi"], chat=False, max_new_tokens=8, model=model)
    with pytest.raises(DNOInputError, match=r"prompt #1 has \d+ tokens.*context of 16 tokens.*max_new_tokens"):
        check_prompt_lengths(tok, ["Hi", "A much longer prompt that will not fit at all"], False, 8, model)


def test_unknown_model_path_while_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DNOInputError, match=r"no-such-org/no-such-model.*offline.*save_pretrained"):
        load_causal_lm("no-such-org/no-such-model")
    with pytest.raises(DNOInputError, match="tokenizer"):
        load_tokenizer("no-such-org/no-such-model")
