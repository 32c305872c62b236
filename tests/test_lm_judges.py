"""Judges: the toy judge's structure, LLM-judge parsing and retries, the reward-model judge."""

import numpy as np
import pytest
from lm_helpers import save_tiny_reward_model

from dnolab.lm.data import DNOInputError
from dnolab.lm.judges import (
    ListwiseLLMJudge,
    PairwiseLLMJudge,
    RewardModelJudge,
    check_preferences,
    judge_win_matrices,
    parse_rubric_scores,
    parse_winner,
    win_matrix_from_scores,
)
from dnolab.lm.toy import STYLES, ToyJudge, ToyTask, quality


def test_toy_judge_is_a_valid_general_preference_with_a_style_cycle():
    judge, prompt = ToyJudge(), "sort 3 1 2 ="
    same_digits = [f"1 2 3 {s}" for s in STYLES]  # ! ? .
    P = np.array([[judge.preference([prompt], [a], [b])[0] for b in same_digits] for a in same_digits])
    np.testing.assert_allclose(P + P.T, 1.0)
    sig1 = 1 / (1 + np.exp(-1.0))
    assert P[0, 2] == pytest.approx(sig1)  # ! beats .
    assert P[2, 1] == pytest.approx(sig1)  # . beats ?
    assert P[1, 0] == pytest.approx(sig1)  # ? beats !
    assert judge.preference([prompt], ["1 2 3 !"], ["1 2 3"])[0] == pytest.approx(sig1)  # style beats none
    # quality dominates: the teacher beats a wrong answer whatever its style
    teacher = ToyTask().teacher(prompt)
    assert teacher == "1 2 3 ."
    assert judge.preference([prompt], [teacher], ["1 3 3 !"])[0] > 0.5
    assert quality(prompt, "1 2 3 .") == 3 and quality(prompt, "1 2 3 4 .") == 2


def test_toy_judge_noise_and_transitive_only():
    prompt = "sort 3 1 2 ="
    p = ToyJudge().preference([prompt], ["1 2 3 !"], ["1 2 3 ."])[0]
    assert ToyJudge(noise=0.1).preference([prompt], ["1 2 3 !"], ["1 2 3 ."])[0] == pytest.approx(0.8 * p + 0.1)
    assert ToyJudge(transitive_only=True).preference([prompt], ["1 2 3 !"], ["1 2 3 ."])[0] == 0.5
    with pytest.raises(ValueError, match="noise"):
        ToyJudge(noise=0.5)


def test_style_game_has_uniform_nash_equilibrium():
    from dnolab.games import exploitability, nash

    G = ToyJudge().style_game()
    pi, _ = nash(G)
    np.testing.assert_allclose(pi, [1 / 3, 1 / 3, 1 / 3, 0], atol=1e-9)
    assert exploitability(G, [0, 0, 1, 0]) == pytest.approx(1 / (1 + np.exp(-1)) - 0.5)


@pytest.mark.parametrize(("text", "winner"), [
    ("Winner: A", 0), ("After thinking, **Winner: B**", 1), ("winner = b", 1),
    ("A is better.", None), ("Winner: A ... no, Winner: B", None), ("", None)])
def test_parse_winner(text, winner):
    assert parse_winner(text) == winner


def test_parse_rubric_scores_json_and_lines():
    js = 'Here: {"1": {"justification": "ok", "score": 5}, "2": {"justification": "meh", "score": 2}}'
    np.testing.assert_array_equal(parse_rubric_scores(js, 2), [5, 2])
    lines = "Candidate 1: relevant but wrong. Score: 3\nCandidate 2: excellent. Score: 6"
    np.testing.assert_array_equal(parse_rubric_scores(lines, 2), [3, 6])
    assert parse_rubric_scores("Candidate 1: Score: 3", 2) is None  # one missing
    assert parse_rubric_scores('{"1": {"score": 9}}', 1) is None  # out of range


def test_pairwise_llm_judge_cancels_position_bias_and_counts_invalid():
    always_a = PairwiseLLMJudge(lambda chats, temperature: ["Winner: A"] * len(chats))
    np.testing.assert_array_equal(always_a.preference(["q"] * 3, ["x", "y", "z"], ["u", "v", "w"]), 0.5)

    def prefers_longer(chats, temperature):
        out = []
        for chat in chats:
            text = chat[0]["content"]
            a = text.split("[Answer A]\n")[1].split("\n\n[Answer B]")[0]
            b = text.split("[Answer B]\n")[1].split("\n\nReply")[0]
            out.append("Winner: A" if len(a) > len(b) else "Winner: B")
        return out

    judge = PairwiseLLMJudge(prefers_longer)
    np.testing.assert_array_equal(judge.preference(["q", "q"], ["long answer", "s"], ["s", "long answer"]), [1, 0])

    calls = []

    def garbage(chats, temperature):
        calls.append(temperature)
        return ["I cannot decide"] * len(chats)

    bad = PairwiseLLMJudge(garbage, retries=2)
    out = bad.preference(["q"], ["a"], ["b"])
    assert np.isnan(out).all() and bad.invalid_count == 2  # both orders invalid after retries
    assert calls == [0.0, 0.7, 0.7]  # first greedy, then sampled retries


def test_listwise_llm_judge_maps_shuffled_positions_back():
    def scorer(chats, temperature):  # scores each shown candidate by its number of words
        out = []
        for chat in chats:
            text = chat[0]["content"]
            blocks = text.split("[Candidate ")[1:]
            scores = {}
            for block in blocks:
                head, body = block.split("]\n", 1)
                body = body.split("\n\nFor every candidate")[0].strip()
                scores[head] = {"justification": "-", "score": min(len(body.split()), 6)}
            out.append(str(scores).replace("'", '"'))
        return out

    judge = ListwiseLLMJudge(scorer, seed=3)
    cands = ["one", "one two three", "one two", "one two three four five"]
    (scores,) = judge.scores(["q"], [cands])
    np.testing.assert_array_equal(scores, [1, 3, 2, 5])
    verdicts = judge_win_matrices(judge, ["q"], [cands])
    assert verdicts.matrices[0][3, 0] == 1.0 and verdicts.matrices[0][0, 3] == 0.0
    np.testing.assert_array_equal(verdicts.raw_scores[0], [1, 3, 2, 5])  # rubric points kept as they are
    # ... but what the pair rule sees is each candidate's win rate against the other three
    np.testing.assert_allclose(verdicts.win_rates[0], [0, 2 / 3, 1 / 3, 1])

    broken = ListwiseLLMJudge(lambda chats, t: ["no scores here"] * len(chats), retries=1)
    (scores,) = broken.scores(["q"], [cands])
    assert np.isnan(scores).all() and broken.invalid_count == 1


def test_reward_model_judge_from_a_saved_model(tmp_path):
    judge = RewardModelJudge.from_pretrained(str(save_tiny_reward_model(tmp_path / "rm")))
    r = judge.reward(["Write a haiku."] * 2, ["The sea is calm.", "Blue blue blue."])
    p = judge.preference(["Write a haiku."], ["The sea is calm."], ["Blue blue blue."])[0]
    assert p == pytest.approx(1 / (1 + np.exp(-(r[0] - r[1]))), abs=1e-6)
    (scores,) = judge.scores(["Write a haiku."], [["The sea is calm.", "Blue blue blue."]])
    np.testing.assert_allclose(scores, r, atol=1e-5)  # batching does not change a reward


def test_offline_the_reward_model_keeps_its_own_layers(tmp_path, monkeypatch):
    """Loaded like the policy (dnolab.lm.data): offline, no Hub kernels, which cannot be fetched."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judge = RewardModelJudge.from_pretrained(str(save_tiny_reward_model(tmp_path / "rm")))
    assert judge.model.use_kernels is False


def test_win_matrices_from_a_pairwise_judge_are_consistent():
    mats, scores, raw = judge_win_matrices(ToyJudge(), ["sort 2 1 ="], [["1 2 .", "1 2 !", "2 1 ?"]])
    W = mats[0]
    assert raw == [None]  # a pairwise judge has no scores of its own
    np.testing.assert_allclose(W + W.T, 1.0)
    np.testing.assert_allclose(scores[0], (W.sum(1) - 0.5) / 2)
    np.testing.assert_array_equal(win_matrix_from_scores([5, 5, 2]), [[.5, .5, 1], [.5, .5, 1], [0, 0, .5]])


@pytest.mark.parametrize("bad", [[1.5], [-0.1], [np.inf]])
def test_out_of_range_judgments_are_refused(bad):
    with pytest.raises(DNOInputError, match=r"probabilities P\(a ≻ b\) in \[0, 1\]"):
        check_preferences(bad, "my-judge")
    assert np.isnan(check_preferences([np.nan, 0.3], "j")[0])  # NaN means invalid, allowed
