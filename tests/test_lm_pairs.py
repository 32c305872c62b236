"""DNO-Prct's pair rule, Algorithm 1's soft labels and replay shares, on hand-checked cases."""

import math

import numpy as np
import pytest

from dnolab.lm.config import ConfigError
from dnolab.lm.judges import win_matrix_from_scores, win_rates
from dnolab.lm.pairs import PairRule, count_types, replay_counts, select_pairs


def as_set(pairs):
    return {(p["chosen"], p["rejected"], p["type"]) for p in pairs}


def test_the_papers_rubric_rule_in_win_rate_units():
    """The paper: positive scores 5 or 6; negative >= 2 points lower when the teacher is the
    positive, >= 1 point lower when a student is. Students score 6, 4, 5, 3 and the gold answer
    (last) 5. Against the other four candidates, counting ties as ½, their win rates are
    6 → 4/4, 4 → 1/4, 5 → (1 + 1 + ½)/4, 3 → 0, gold 5 → (1 + 1 + ½)/4."""
    W = win_matrix_from_scores(np.array([6, 4, 5, 3, 5]))
    r = win_rates(W)
    np.testing.assert_allclose(r, [1.0, 0.25, 0.625, 0.0, 0.625])
    rule = PairRule(positive_band=0.4, margin_teacher=0.5, margin_student=0.3, max_pairs_per_prompt=99)
    pairs = select_pairs(r, has_gold=True, rule=rule)
    assert as_set(pairs) == {  # the same seven pairs the rubric rule makes
        (0, 1, "S>S"), (0, 2, "S>S"), (0, 3, "S>S"), (0, 4, "S>T"),
        (2, 1, "S>S"), (2, 3, "S>S"),
        (4, 3, "T>S"),
    }
    assert count_types(pairs) == {"T>S": 1, "S>T": 1, "S>S": 5}


def test_no_positive_far_enough_above_the_rest_gives_no_pairs():
    rule = PairRule(positive_band=0.05, margin_teacher=0.2, margin_student=0.1)
    assert select_pairs([0.55, 0.5, 0.52, 0.48, 0.5], has_gold=True, rule=rule) == []


def test_type_filter_and_deduplication_run_before_the_cap():
    # DNO-Restrictive: the two largest margins are a student's; the cap must not spend slots on them
    restrictive = PairRule(positive_band=0.1, margin_teacher=0.2, margin_student=0.1, max_pairs_per_prompt=2,
                           allowed_types=("T>S",))
    pairs = select_pairs([0.9, 0.1, 0.3, 0.85], has_gold=True, rule=restrictive)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(3, 1), (3, 2)]
    # a repeated sample must not take a slot either: ("a" ≻ "b") once, then ("a" ≻ gold)
    texts = ["a", "a", "b", "g"]
    capped = PairRule(positive_band=0.05, margin_teacher=0.2, margin_student=0.1, max_pairs_per_prompt=2)
    pairs = select_pairs([0.9, 0.9, 0.1, 0.5], True, capped, texts=texts)
    assert [(texts[p["chosen"]], texts[p["rejected"]]) for p in pairs] == [("a", "b"), ("a", "g")]


def test_automatic_negatives_get_a_finite_margin_and_a_flag():
    rule = PairRule(positive_band=0.05, margin_teacher=0.2, margin_student=0.1)
    pairs = select_pairs([0.8, 0.75, 0.3], has_gold=False, rule=rule, degenerate=[False, True, False])
    by_pair = {(p["chosen"], p["rejected"]): p for p in pairs}
    assert by_pair[(0, 1)]["auto_negative"] and by_pair[(0, 1)]["margin"] == pytest.approx(0.05)
    assert not by_pair[(0, 2)]["auto_negative"]
    assert all(math.isfinite(p["margin"]) for p in pairs)
    assert pairs[0]["auto_negative"]  # automatic negatives come first, whatever their margin


def test_win_rate_band_and_cap_keep_largest_margins():
    rule = PairRule(positive_band=0.05, margin_teacher=0.2, margin_student=0.1, max_pairs_per_prompt=2)
    pairs = select_pairs([0.9, 0.1, 0.5, 0.88, 0.7], has_gold=True, rule=rule)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(0, 1), (3, 1)]
    assert pairs[0]["margin"] == pytest.approx(0.8)


def test_degenerate_samples_are_never_chosen_and_always_negatives():
    rule = PairRule(positive_band=0.05, margin_teacher=0.2, margin_student=0.1)
    pairs = select_pairs([0.99, 0.5, 0.95, 0.4], has_gold=True, rule=rule, degenerate=[True, False, False, False])
    assert all(p["chosen"] != 0 for p in pairs)
    assert (2, 0) in {(p["chosen"], p["rejected"]) for p in pairs}


def test_nan_scores_are_left_out():
    pairs = select_pairs([0.9, np.nan, 0.1], has_gold=False, rule=PairRule())
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {(0, 2)}


def test_soft_labels_are_sigmoid_of_win_rate_differences():
    r = [0.8, 0.3, 0.5]
    pairs = select_pairs(r, has_gold=False, rule=PairRule(mode="soft"))
    assert len(pairs) == 3  # every pair, once
    for p in pairs:
        expected = 1 / (1 + math.exp(-(r[p["chosen"]] - r[p["rejected"]])))
        assert p["label"] == pytest.approx(expected)
    scaled = select_pairs(r, has_gold=False, rule=PairRule(mode="soft", soft_label_scale=5.0))
    assert scaled[0]["label"] == pytest.approx(1 / (1 + math.exp(-5 * 0.5)))


def test_allowed_types_restrict_to_teacher_wins():
    rule = PairRule(positive_band=0.4, margin_teacher=0.5, margin_student=0.3, allowed_types=("T>S",))
    assert {p["type"] for p in select_pairs([1.0, 0.25, 0.625, 0.0, 0.625], True, rule)} == {"T>S"}


def test_best_worst_pairs():
    pairs = select_pairs([0.2, 0.9, 0.5], has_gold=False, rule=PairRule(mode="best_worst"))
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(1, 0)]


def test_replay_shares_are_fractions_of_new_pairs_capped_by_availability():
    assert replay_counts(1000, [500, 100, 50], [0.3, 0.15, 0.075]) == [300, 100, 50]
    assert replay_counts(100, [500, 500], [0.3]) == [30, 0]


@pytest.mark.parametrize(("bad", "message"), [
    (dict(mode="nope"), "pairs.mode"), (dict(max_pairs_per_prompt=0), "max_pairs_per_prompt"),
    (dict(margin_student=-1), "margins must be >= 0"), (dict(allowed_types=("X>Y",)), "unknown pair types"),
    (dict(margin_teacher=2), r"win rates in \[0, 1\]"), (dict(positive_min=5), "win rates")])
def test_bad_rules_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message):
        PairRule(**bad)


def test_repeated_samples_make_one_pair_and_defer_to_the_gold_answer():
    rule = PairRule(positive_band=0.05, margin_teacher=0.2, margin_student=0.1)
    texts = ["1 2 !", "1 2 !", "2 1 ?", "1 2 ."]  # two identical samples; gold = "1 2 ."
    scores = [0.8, 0.8, 0.1, 0.6]
    pairs = select_pairs(scores, True, rule, texts=texts)
    keys = [(texts[p["chosen"]], texts[p["rejected"]]) for p in pairs]
    assert len(keys) == len(set(keys)) == 2  # ("1 2 !" > "2 1 ?"), ("1 2 !" > "1 2 .")
    duplicated = select_pairs(scores, True, PairRule(deduplicate=False), texts=texts)
    assert len(duplicated) == 4
    same_as_gold = ["1 2 .", "2 1 ?", "1 2 ."]  # a student sample identical to the gold answer
    types = {p["type"] for p in select_pairs([0.9, 0.1, 0.9], True, rule, texts=same_as_gold)}
    assert types == {"T>S"}


def test_spin_pairs_the_gold_answer_against_every_distinct_sample_regardless_of_scores():
    texts = ["a", "b", "g", "g"]  # the third sample equals the gold answer (last)
    pairs = select_pairs([0.9, 0.2, 0.5, 0.5], True, PairRule(mode="spin"), texts=texts)
    assert [(p["chosen"], p["rejected"], p["type"]) for p in pairs] == [(3, 0, "T>S"), (3, 1, "T>S")]
    (gold,) = select_pairs([0.1, 0.9], True, PairRule(mode="gold"))
    assert gold["chosen"] == gold["rejected"] == 1
    with pytest.raises(ValueError, match="needs the gold answer"):
        select_pairs([0.1, 0.9], False, PairRule(mode="spin"))
