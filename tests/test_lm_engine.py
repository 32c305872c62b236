"""What the headline numbers rest on, each against values derived by hand in the test: Table 2
statistics, win rates and head-to-heads (with invalid verdicts), the mixture reference,
gradient accumulation, offline sampling, best-iterate selection, cut answers, the run folder."""

import json
import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from lm_helpers import save_tiny_chat_model, save_toy_policy

from dnolab.lm.config import TrainingConfig, from_dict
from dnolab.lm.data import load_causal_lm, load_tokenizer
from dnolab.lm.errors import InvalidJudgmentsError
from dnolab.lm.evaluation import (
    best_iterate,
    head_to_head,
    mean_interval,
    table2_statistics,
    win_rate_vs_teacher,
    win_rates_vs_teacher_per_prompt,
)
from dnolab.lm.loop import run_dno
from dnolab.lm.rundir import RunDir
from dnolab.lm.toy import ToyTask
from dnolab.lm.trainer import add_reference_logps, reference_logps, tokenize_pairs, train_on_pairs


class TableJudge:
    """P(a ≻ b) read from a table of texts; NaN for pairs it was not given."""

    name = "table"

    def __init__(self, table: dict):
        self.table = table

    def preference(self, prompts, first, second):
        return np.array([self.table.get((a, b), 1 - self.table.get((b, a), np.nan)) for a, b in zip(first, second,
                                                                                                  strict=True)])


# --- statistics ------------------------------------------------------------------------------------

def test_table2_statistics_by_hand():
    # prompt 0: students s1, s2 and gold; s1 beats gold (0.8), s2 loses (0.3)
    W0 = np.array([[0.5, 0.6, 0.8], [0.4, 0.5, 0.3], [0.2, 0.7, 0.5]])
    # prompt 1: both students lose to gold; one verdict invalid (NaN counts as "does not beat")
    W1 = np.array([[0.5, 0.5, np.nan], [0.5, 0.5, 0.1], [np.nan, 0.9, 0.5]])
    scores = [np.array([0.7, 0.35, 0.45]), np.array([0.5, 0.3, 0.9])]
    out = table2_statistics([W0, W1], scores, True, [[" 1 2 .", " 1"], [" 3", " 4 5 6 7 8 9"]],
                            {"T>S": 2, "S>T": 1, "S>S": 0})
    assert out["best_of_k_win_rate"] == 0.5  # prompt 0 only
    assert out["mean_student_wins"] == 0.5  # (1 + 0) / 2
    assert out["mean_teacher_score"] == pytest.approx((0.45 + 0.9) / 2)
    assert out["mean_student_score"] == pytest.approx((0.7 + 0.35 + 0.5 + 0.3) / 4)
    lengths = [3, 1, 1, 6]
    assert out["student_length_mean"] == pytest.approx(np.mean(lengths))
    assert out["student_length_sd"] == pytest.approx(np.std(lengths))
    assert out["pairs"] == {"T>S": 2, "S>T": 1, "S>S": 0}


def test_win_rate_and_head_to_head_by_hand_with_invalid_verdicts():
    judge = TableJudge({("a", "g"): 0.9, ("b", "g"): 0.2, ("c", "g"): 0.6, ("a", "c"): 0.7})
    prompts = ["x", "y"]
    samples = {0: ["a", "b"], 1: ["c", "d"]}  # ("d", "g") is unknown: NaN, left out
    wr = win_rate_vs_teacher(judge, prompts, samples, ["g", "g"])
    per_prompt = [(0.9 + 0.2) / 2, 0.6]
    assert wr["mean"] == pytest.approx(np.mean(per_prompt)) and wr["n"] == 2
    assert wr["ci95"] == pytest.approx(1.96 * np.std(per_prompt, ddof=1) / np.sqrt(2))
    # head to head: sample i of the new policy against sample i of the old one
    h2h = head_to_head(judge, ["x"], {0: ["a", "c"]}, {0: ["c", "g"]})
    assert h2h["mean"] == pytest.approx((0.7 + 0.6) / 2)
    # 1 of 4 verdicts invalid is fine at max_invalid_share 0.5; 3 of 4 is not
    with pytest.raises(InvalidJudgmentsError, match=r"could not decide 3 of 4 comparisons"):
        win_rate_vs_teacher(judge, prompts, {0: ["d", "e"], 1: ["d", "c"]}, ["g", "g"])


def test_paired_change_in_win_rate_is_measured_prompt_by_prompt():
    # two iterates on the same three prompts; the second is better on each by 0.1
    judge = TableJudge({("a0", "g"): 0.1, ("a1", "g"): 0.5, ("a2", "g"): 0.9,
                        ("b0", "g"): 0.2, ("b1", "g"): 0.6, ("b2", "g"): 1.0})
    prompts, gold = ["x", "y", "z"], ["g"] * 3
    before = win_rates_vs_teacher_per_prompt(judge, prompts, {i: [f"a{i}"] for i in range(3)}, gold)
    after = win_rates_vs_teacher_per_prompt(judge, prompts, {i: [f"b{i}"] for i in range(3)}, gold)
    np.testing.assert_allclose(before, [0.1, 0.5, 0.9])
    change = mean_interval(after - before)
    assert change["mean"] == pytest.approx(0.1) and change["ci95"] == pytest.approx(0.0, abs=1e-12)
    # unpaired, the two means' intervals (±0.45 each) overlap although every prompt improved
    wr_before = win_rate_vs_teacher(judge, prompts, {i: [f"a{i}"] for i in range(3)}, gold)
    assert wr_before["mean"] == pytest.approx(0.5) and wr_before["ci95"] > 0.4


def test_best_iterate_is_the_first_highest_validation_win_rate():
    per_iteration = [{"validation_win_rate": {"mean": v}} for v in (0.2, 0.5, 0.4, 0.5)]
    assert best_iterate(per_iteration) == 1
    assert best_iterate([{}, {"validation_win_rate": {"mean": 0.1}}]) == 1  # no gold for π₁: skipped
    assert best_iterate([{}]) is None


# --- training -------------------------------------------------------------------------------------

def _pairs(n: int, seed: int = 0) -> Dataset:
    task, rng = ToyTask(), np.random.default_rng(seed)
    prompts = task.prompts(n, rng)
    return Dataset.from_dict({"prompt": prompts, "chosen": [" " + task.teacher(p) for p in prompts],
                              "rejected": [" " + task.demonstration(p, rng) for p in prompts]})


def _sequence_logp(model, tok, prompt: str, completion: str) -> float:
    """log π(completion + EOS | prompt), written out token by token."""
    ids = tok(prompt)["input_ids"]
    target = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([ids + target])).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    return float(sum(logp[len(ids) - 1 + k, token] for k, token in enumerate(target)))


def test_the_mixture_reference_is_the_geometric_mixture_of_pi_t_and_pi_1(tmp_path):
    """Algorithm 4's reference π_t^(1−α)·π₁^α: its log-prob is (1−α)·log π_t + α·log π₁."""
    tok = load_tokenizer(str(save_toy_policy(tmp_path / "a", seed=1)))
    pi_t, pi_1 = load_causal_lm(str(tmp_path / "a")), load_causal_lm(str(save_toy_policy(tmp_path / "b", seed=2)))
    pairs = tokenize_pairs(_pairs(3), tok, chat=False)
    alpha = 0.3
    out = reference_logps(pairs, "mixture", pi_t, lambda: pi_1, tok, TrainingConfig(), alpha)
    for row in out:
        for side in ("chosen", "rejected"):
            expected = ((1 - alpha) * _sequence_logp(pi_t, tok, row["prompt"], row[side])
                        + alpha * _sequence_logp(pi_1, tok, row["prompt"], row[side]))
            assert row[f"ref_{side}_logps"] == pytest.approx(expected, abs=1e-4)
    fixed = reference_logps(pairs, "initial", pi_t, lambda: pi_1, tok, TrainingConfig(), alpha)
    assert fixed[0]["ref_chosen_logps"] == pytest.approx(_sequence_logp(pi_1, tok, fixed[0]["prompt"],
                                                                        fixed[0]["chosen"]), abs=1e-4)


def test_gradient_accumulation_gives_the_large_batch_gradient(tmp_path):
    """One step on 16 pairs has the gradient of 4 accumulated micro-batches of 4 (the loss is a
    per-batch mean, so the Trainer must divide each micro-batch's gradient by 4)."""
    from transformers import TrainerCallback

    class Gradient(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            self.value = torch.cat([p.grad.flatten() for p in model.parameters()]).clone()

    path = save_toy_policy(tmp_path / "pi")
    tok = load_tokenizer(str(path))
    data = add_reference_logps(load_causal_lm(str(path)), tokenize_pairs(_pairs(16), tok, chat=False), tok)
    data = data.map(lambda r: {"ref_chosen_logps": r["ref_chosen_logps"] + 1.0})  # Δ ≠ 0: a real gradient
    grads, losses = [], []
    for accumulation in (1, 4):
        config = TrainingConfig(batch_size=16, gradient_accumulation_steps=accumulation, max_grad_norm=1e9)
        grad = Gradient()
        _, steps = train_on_pairs(load_causal_lm(str(path)), tok, data, config, str(tmp_path / f"o{accumulation}"),
                                  seed=0, callbacks=[grad])
        grads.append(grad.value)
        losses.append([s["loss"] for s in steps])
    assert len(losses[0]) == len(losses[1]) == 1
    assert losses[0][0] == pytest.approx(losses[1][0], abs=1e-6)
    assert grads[0].abs().max() > 1e-3
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-4)  # fp32 summation order


def test_cut_answers_get_no_end_of_sequence_token(tmp_path):
    tok = load_tokenizer(str(save_toy_policy(tmp_path / "pi")))
    pairs = Dataset.from_dict({"prompt": ["sort 2 1 ="] * 2, "chosen": [" 1 2 .", " 1 2 ."],
                               "rejected": [" 2 1", " 2 1"], "chosen_finished": [True, True],
                               "rejected_finished": [True, False]})
    rows = tokenize_pairs(pairs, tok, chat=False)
    ids = tok(" 2 1", add_special_tokens=False)["input_ids"]
    assert rows[0]["rejected_ids"] == [*ids, tok.eos_token_id]
    assert rows[1]["rejected_ids"] == ids  # cut at max_new_tokens: it never ended, so no EOS
    assert rows[1]["chosen_ids"][-1] == tok.eos_token_id


def test_a_chat_answer_ends_as_its_chat_template_writes_it(tmp_path):
    """For a chat model a finished answer ends with the template's end of turn (here ``<|end|>``;
    the tokenizer's EOS is ``<eos>``, as Gemma's is), the tokens the template itself gives an
    assistant message; a cut one gets nothing."""
    tok = load_tokenizer(str(save_tiny_chat_model(tmp_path / "chat")))
    pairs = Dataset.from_dict({"prompt": ["Hi"], "chosen": ["Red and blue."], "rejected": ["Red and"],
                               "chosen_finished": [True], "rejected_finished": [False]})
    row = tokenize_pairs(pairs, tok, chat=True)[0]
    user = [{"role": "user", "content": "Hi"}]
    prompt = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=True)["input_ids"]
    whole = tok.apply_chat_template([*user, {"role": "assistant", "content": "Red and blue."}],
                                    tokenize=True)["input_ids"]
    assert row["prompt_ids"] == prompt and row["chosen_ids"] == whole[len(prompt):]
    assert row["chosen_ids"][-1] != tok.eos_token_id
    assert row["rejected_ids"] == tok("Red and", add_special_tokens=False)["input_ids"]


# --- runs -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return save_toy_policy(tmp_path_factory.mktemp("engine") / "pi1")


def _config(out, policy, **extra):
    data = {"name": "r", "output_dir": str(out), "iterations": 1, "prompts_per_iteration": 24,
            "samples_per_prompt": 3, "model": {"name_or_path": str(policy)},
            "sampling": {"max_new_tokens": 8, "batch_size": 12}, "training": {"batch_size": 8, "learning_rate": 1e-3},
            "eval": {"prompts": 12, "validation_prompts": 6, "samples_per_prompt": 1}, **extra}
    return from_dict(data)


def test_offline_sampling_draws_every_iteration_from_pi_1(tmp_path, policy):
    from dnolab.lm.sampling import SamplingConfig, sample_responses

    config = _config(tmp_path, policy, iterations=2, sample_from="initial", reference="initial")
    run_dno(config, show_progress=False)
    run = RunDir(config.run_dir())
    rows = run.stage(2, "samples")
    from datasets import load_from_disk

    saved = load_from_disk(str(rows)).to_list()
    tok = load_tokenizer(str(policy))
    expected = sample_responses(load_causal_lm(str(run.policy(0))), tok, [r["prompt"] for r in saved], 3,
                                SamplingConfig(max_new_tokens=8, batch_size=12), seed=config.seed * 1000 + 2,
                                show_progress=False)
    assert [[s.strip() for s in r["responses"]] for r in saved] == [expected[i] for i in range(len(saved))]


def test_extending_a_run_keeps_its_prompts_and_marks_reused_stages(tmp_path, policy):
    config = _config(tmp_path, policy, iterations=2)
    run_dno(config, show_progress=False)
    run = RunDir(config.run_dir())
    before = {t: run.load_eval(t)[0] for t in (0, 1, 2)}
    pairs_before = run.pairs(1)["prompt"]
    summary = run_dno(config.replace(iterations=3), show_progress=False)
    assert summary["iterations_done"] == 3
    for t in (0, 1, 2):  # the evaluation prompts did not move ...
        assert run.load_eval(t)[0] == before[t]
    assert run.load_eval(3)[0] == before[0]  # ... and the new iterate is judged on them too
    assert run.pairs(1)["prompt"] == pairs_before
    new_prompts = set(run.pairs(3)["prompt"]) | set(load_samples_prompts(run, 3))
    old_prompts = set(before[0]) | set(load_samples_prompts(run, 1)) | set(load_samples_prompts(run, 2))
    assert not new_prompts & old_prompts  # iteration 3 trains on prompts nobody used before
    metrics = run.read_metrics(3)
    assert metrics["reused_stages"] == [] and metrics["timings"]["sampling_s"] > 0
    # a rerun of a half-done iteration reports which stages it reused
    (run.metrics_path(3)).unlink()
    run_dno(config.replace(iterations=3), show_progress=False)
    assert run.read_metrics(3)["reused_stages"] == ["sampling", "judging", "pairs", "training"]


def load_samples_prompts(run: RunDir, t: int) -> list[str]:
    from datasets import load_from_disk

    return load_from_disk(str(run.stage(t, "samples")))["prompt"]


class GoldOnlyJudge:
    """Decides only comparisons against the teacher's answer (like a judge that needs a
    reference answer); every student-vs-student comparison is invalid."""

    name = "gold-only"

    def preference(self, prompts, first, second):
        task = ToyTask()
        return np.array([0.3 if b == task.teacher(p) else np.nan for p, b in zip(prompts, second, strict=True)])


class MostlyNaNJudge:
    name = "mostly-nan"

    def __init__(self):
        self.calls = 0

    def preference(self, prompts, first, second):
        p = np.full(len(prompts), np.nan)
        p[::5] = 0.5  # 80 % invalid
        return p


def test_evaluation_with_mostly_invalid_verdicts_stops_with_a_named_error(tmp_path, policy):
    with pytest.raises(InvalidJudgmentsError,
                       match=r"iterate π1 \(iteration 0\) vs the teacher under judge 'quality': judge 'mostly-nan' "
                             r"could not decide 9 of 12 comparisons \(NaN\), more than max_invalid_share=0.5"):
        run_dno(_config(tmp_path, policy), show_progress=False, heldout_judges={"quality": MostlyNaNJudge()})
    assert not RunDir(tmp_path / "r").metrics_path(0).exists()  # no number was reported


def test_training_judgments_with_too_many_invalid_verdicts_stop_before_training(tmp_path, policy):
    """K = 4 samples and the gold answer: 6 of the 10 pairs are student vs student, all invalid."""
    with pytest.raises(InvalidJudgmentsError, match=r"NaN \(invalid\) for 60% of the comparisons in iteration 1"):
        run_dno(_config(tmp_path, policy, samples_per_prompt=4), show_progress=False, judge=GoldOnlyJudge())
    run = RunDir(tmp_path / "r")
    assert run.metrics_path(0).exists() and not run.stage(1, "judgments").exists()


def test_metrics_files_are_strict_json(tmp_path, policy):
    """NaN is written as null (Python would write the non-JSON token NaN)."""
    run_dno(_config(tmp_path, policy), show_progress=False)
    for path in (tmp_path / "r").rglob("*.json"):
        if ".trainer" in str(path) or "policy" in path.parts:
            continue
        json.loads(path.read_text(), parse_constant=lambda c, where=path: pytest.fail(f"{where} holds {c}"))
    assert math.isfinite(json.loads((tmp_path / "r" / "iter_01" / "metrics.json").read_text())
                         ["training_data"]["student_length_mean"])
