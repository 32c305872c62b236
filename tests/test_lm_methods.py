"""The peer methods as configurations: each is valid, and its distinctive parts are right."""

import math

import numpy as np
import pytest
import torch
from lm_helpers import save_toy_policy

from dnolab.lm.config import ConfigError, DNOConfig, from_dict
from dnolab.lm.loop import run_dno
from dnolab.lm.losses import sppo_loss
from dnolab.lm.methods import ABLATIONS, CHANGES, METHODS, method_config
from dnolab.lm.pairs import select_pairs
from dnolab.lm.rundir import RunDir, config_diff, load_rows


def test_unknown_method_is_refused():
    with pytest.raises(ConfigError, match="unknown method 'dpo2'"):
        method_config(DNOConfig(), "dpo2")


def _changed(name):
    base = DNOConfig()
    return {d.split(":")[0] for d in config_diff(base.to_dict(), method_config(base, name).to_dict())} - {"name"}


def test_every_method_and_ablation_says_what_it_changes():
    assert set(CHANGES) == set(METHODS) | set(ABLATIONS)


def test_iterative_dpo_is_decomposed_one_change_at_a_time():
    assert _changed("dno_prct") == set()
    assert _changed("iterative_dpo_ref") == {"reference"}
    assert _changed("iterative_dpo_ranker") == {"ranker"}
    assert _changed("iterative_dpo_ref_ranker") == {"reference", "ranker"}
    assert _changed("iterative_dpo") == {"reference", "ranker", "use_gold", "pairs.mode"}
    assert _changed("offline_dpo") == {"sample_from", "reference", "use_gold", "training.epochs"}
    assert _changed("no_gold") == {"use_gold"}


def test_no_margin_filter_keeps_every_pair_the_judge_decides():
    """Every pair of candidates with different win rates, the higher one chosen, no cap; a pair
    the judge does not separate (a tie) is not decided; the shipped rule keeps at most 6."""
    rule = method_config(DNOConfig(), "no_margin_filter").pairs
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.random(5)
        pairs = select_pairs(scores, has_gold=True, rule=rule)
        assert len(pairs) == 10  # all 5·4/2 pairs
        assert all(p["chosen_score"] > p["rejected_score"] for p in pairs)
        assert len(select_pairs(scores, has_gold=True, rule=DNOConfig().pairs)) <= 6
    tied = [0.7, 0.7, 0.2, 0.5, 0.1]
    pairs = select_pairs(tied, has_gold=True, rule=rule)
    assert len(pairs) == 9 and not any({p["chosen"], p["rejected"]} == {0, 1} for p in pairs)
    # twenty candidates: 190 decided pairs, far above any cap
    assert len(select_pairs(rng.random(20), has_gold=True, rule=rule)) == 190


def test_sppo_loss_regresses_log_ratios_to_scaled_win_rates():
    beta = 0.5
    hw, hl = torch.tensor([0.3]), torch.tensor([-0.2])
    pw, pl = torch.tensor([0.9]), torch.tensor([0.2])
    loss = sppo_loss(hw, hl, torch.zeros(1), torch.zeros(1), pw, pl, beta)
    expected = 0.5 * ((0.3 - (0.9 - 0.5) / beta) ** 2 + (-0.2 - (0.2 - 0.5) / beta) ** 2)
    assert loss.item() == pytest.approx(expected)
    zero = sppo_loss(torch.tensor([0.8]), torch.tensor([-0.6]), torch.zeros(1), torch.zeros(1), pw, pl, beta)
    assert zero.item() == pytest.approx(0.0)  # minimised at h = η (P̂ − ½)


def test_geometric_mixture_sampling_matches_the_exact_first_token_distribution(tmp_path):
    from dnolab.lm.data import encode_prompt, load_causal_lm, load_tokenizer
    from dnolab.lm.sampling import SamplingConfig, sample_mixture_batch

    a, b = save_toy_policy(tmp_path / "a", seed=1), save_toy_policy(tmp_path / "b", seed=2)
    tok, pa, pb = load_tokenizer(str(a)), load_causal_lm(str(a)), load_causal_lm(str(b))
    prompt, alpha = "sort 3 1 =", 0.3
    ids = torch.tensor([encode_prompt(tok, prompt, chat=False)])
    with torch.no_grad():
        la = torch.log_softmax(pa(ids).logits[0, -1], -1)
        lb = torch.log_softmax(pb(ids).logits[0, -1], -1)
    exact = torch.softmax((1 - alpha) * la + alpha * lb, -1).numpy()
    samples = sample_mixture_batch(pa, pb, tok, [prompt], 20000, SamplingConfig(max_new_tokens=1), seed=0,
                                   alpha=alpha)[0][0]
    # special tokens (pad, eos, unk) decode to nothing: count them as one outcome
    special = [tok.pad_token_id, tok.eos_token_id, tok.unk_token_id]
    first = [tok.convert_tokens_to_ids(s.split()[0]) if s else special[0] for s in samples]
    observed = np.bincount(first, minlength=len(exact)) / len(first)
    exact[special[0]] = exact[special].sum()
    exact[special[1:]] = 0.0
    observed[special[1:]] = 0.0
    np.testing.assert_allclose(observed, exact, atol=0.012)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return save_toy_policy(tmp_path_factory.mktemp("m") / "pi1")


def tiny(out, policy, name):
    base = from_dict({"name": "t", "output_dir": str(out), "iterations": 2, "prompts_per_iteration": 24,
                      "samples_per_prompt": 3, "model": {"name_or_path": str(policy)},
                      "sampling": {"max_new_tokens": 8, "batch_size": 12},
                      "training": {"batch_size": 8, "learning_rate": 1e-3},
                      "eval": {"prompts": 12, "validation_prompts": 6, "samples_per_prompt": 1}})
    return method_config(base, name)


def _losses(out, name, t):
    return RunDir(out / f"t_{name}").read_train_log(t)["losses"]


def test_regularised_dno_uses_the_geometric_mixture_reference(tmp_path, policy):
    run_dno(tiny(tmp_path, policy, "dno_regularized"), show_progress=False)
    assert _losses(tmp_path, "dno_regularized", 1)[0] == pytest.approx(math.log(2), abs=1e-5)  # π_1 = π_ref
    # at t = 2 the reference π_2^0.9·π_1^0.1 differs from π_2, so the first loss is not log 2
    assert abs(_losses(tmp_path, "dno_regularized", 2)[0] - math.log(2)) > 1e-4


def test_fixed_reference_dpo_and_reward_model_ranking(tmp_path, policy):
    run_dno(tiny(tmp_path, policy, "iterative_dpo"), show_progress=False)
    run = tmp_path / "t_iterative_dpo"
    assert (run / "reward_model" / "config.json").exists()
    judged = load_rows(RunDir(run).stage(2, "judgments"))
    pairs = RunDir(run).pairs(2)
    assert "rank_scores" in judged.column_names and set(pairs["type"]) == {"S>S"}  # no gold answer
    assert len(pairs) <= len(judged)  # one best-vs-worst pair per prompt at most
    assert abs(_losses(tmp_path, "iterative_dpo", 2)[0] - math.log(2)) > 1e-4  # reference stays π_1


def test_reward_model_ranker_alone_keeps_the_gold_answer_and_the_reference_pi_t(tmp_path, policy):
    run_dno(tiny(tmp_path, policy, "iterative_dpo_ranker"), show_progress=False)
    run = tmp_path / "t_iterative_dpo_ranker"
    judged = load_rows(RunDir(run).stage(2, "judgments")).to_list()
    assert all(r["has_gold"] and r["rank_scores"] for r in judged)
    assert abs(_losses(tmp_path, "iterative_dpo_ranker", 2)[0] - math.log(2)) < 1e-5  # reference π_t
    pairs = RunDir(run).pairs(2).to_list()
    for p in pairs:  # ranked by the reward model, not by the judge
        row = next(r for r in judged if r["prompt"] == p["prompt"])
        i, j = row["candidates"].index(p["chosen"]), row["candidates"].index(p["rejected"])
        assert p["chosen_score"] == pytest.approx(row["rank_scores"][i])
        assert row["rank_scores"][i] > row["rank_scores"][j]


def test_offline_the_fitted_reward_model_keeps_its_own_layers(tmp_path, policy, monkeypatch):
    """RewardTrainer calls `model.train()`, which offline on a GPU fails on a Hub kernel it cannot
    fetch: the reward model is loaded with the policy's offline settings (dnolab.lm.data)."""
    from transformers import AutoModelForSequenceClassification

    from dnolab.lm.reward_model import fit_reward_model

    loaded, real = [], AutoModelForSequenceClassification.from_pretrained
    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained",
                        lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judgments = [{"prompt": "sort 2 1 =", "candidates": [" 1 2 !", " 2 1 !"], "win_matrix": [[0.5, 0.9], [0.1, 0.5]]}]
    fit_reward_model(judgments, str(policy), tmp_path / "rm", seed=0, chat=False, epochs=1, batch_size=1)
    assert len(loaded) == 1 and loaded[0].use_kernels is False


def test_a_shared_reward_model_leaves_only_the_reference_changed(tmp_path, policy):
    from dnolab.lm.experiments import share_reward_model

    ranker, both = tiny(tmp_path, policy, "iterative_dpo_ranker"), tiny(tmp_path, policy, "iterative_dpo_ref_ranker")
    with pytest.raises(ConfigError, match="does not exist yet"):
        share_reward_model(ranker, both)
    run_dno(ranker, show_progress=False)
    with pytest.raises(ConfigError, match=r"do not start alike.*seed"):
        share_reward_model(ranker, both.replace(seed=1))
    with pytest.raises(ConfigError, match="ranker: reward_model"):
        share_reward_model(ranker, tiny(tmp_path, policy, "iterative_dpo_ref"))
    shared = share_reward_model(ranker, both)
    run_dno(both, show_progress=False)
    assert not (shared.parent / ".reward_model.shared").exists() and (shared / "config.json").exists()
    one = load_rows(RunDir(ranker.run_dir()).stage(1, "judgments")).to_list()
    two = load_rows(RunDir(both.run_dir()).stage(1, "judgments")).to_list()
    assert [r["rank_scores"] for r in one] == [r["rank_scores"] for r in two]  # the same ranker, same data
    assert abs(_losses(tmp_path, "iterative_dpo_ref_ranker", 2)[0] - math.log(2)) > 1e-4  # reference π_1


def _data(out, name, t, stage):
    return load_rows(RunDir(out / f"t_{name}").stage(t, stage)).to_list()


@pytest.mark.parametrize("name", ["sppo", "spin", "sft_gold", "offline_dpo", "dno_alg1", "dno_restrictive"])
def test_each_method_trains_on_its_own_kind_of_pairs(tmp_path, policy, name):
    summary = run_dno(tiny(tmp_path, policy, name), show_progress=False)
    assert summary["iterations_done"] == 2
    judged, pairs = _data(tmp_path, name, 2, "judgments"), _data(tmp_path, name, 2, "pairs")
    gold = {r["prompt"]: r["candidates"][-1] for r in judged if r["has_gold"]}
    log = RunDir(tmp_path / f"t_{name}").read_train_log(2)
    if name == "sppo":  # no teacher; the best and the worst sample, each with its win rate
        assert not gold and len(pairs) <= len(judged)
        assert all(p["type"] == "S>S" and (p["auto_negative"] or p["chosen_score"] > p["rejected_score"])
                   for p in pairs)
    elif name == "spin":  # the gold answer beats every distinct sample, whatever the judge said
        assert pairs and all(p["chosen"] == gold[p["prompt"]] and p["type"] == "T>S" for p in pairs)
        for r in judged:
            distinct = {c for c in r["candidates"][:-1] if c != r["candidates"][-1]}
            assert sorted(p["rejected"] for p in pairs if p["prompt"] == r["prompt"]) == sorted(distinct)
    elif name == "sft_gold":  # the gold answer alone; the loss is its NLL, not a contrast
        assert all(p["chosen"] == p["rejected"] == gold[p["prompt"]] for p in pairs)
        assert log["losses"][0] > math.log(2)
    elif name == "offline_dpo":  # two epochs over the pairs made from π₁'s samples, no gold
        assert not gold and {p["type"] for p in pairs} <= {"S>S"}
        assert len(log["losses"]) == 2 * (len(pairs) // 8)
    elif name == "dno_alg1":  # every pair of usable candidates, soft label σ(r₁ − r₂)
        for r in judged:
            usable = sum(not d for d in r["degenerate"])
            mine = [p for p in pairs if p["prompt"] == r["prompt"]]
            assert len(mine) <= usable * (usable - 1) // 2
        assert all(p["target"] == pytest.approx(1 / (1 + math.exp(-(p["chosen_score"] - p["rejected_score"]))))
                   for p in pairs)
    elif name == "dno_restrictive":  # only teacher-beats-student pairs
        assert pairs and {p["type"] for p in pairs} == {"T>S"}
