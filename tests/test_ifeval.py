"""The instruction-following task: checkers, prompts, the teacher and the two judges.

Expected values are derived by hand from the rules stated in dnolab/lm/ifeval.
"""

import math

import numpy as np
import pytest

from dnolab.intransitivity import cyclic_triple_share
from dnolab.lm.data import DNOInputError
from dnolab.lm.ifeval import (
    HELDOUT_KINDS,
    INCOMPATIBLE,
    KIND_NAMES,
    KINDS,
    TASKS,
    TEACHER_LAPSES,
    Constraint,
    HeldoutJudge,
    PanelJudge,
    constraints_from_spec,
    constraints_met,
    count_sentences,
    cyclic_share,
    features,
    lapses,
    make_prompt,
    make_prompt_table,
    only_questions,
    parse_constraints,
    prompt_topic,
    response_metrics,
    sense,
    teacher_answer,
    win_matrix,
    words,
)
from dnolab.lm.ifeval.corrector import corrected_answer, correcting_teacher

# (kind, value, answer, expected): at least one answer that meets and one that fails per kind.
CASES = [
    ("lowercase", None, "volcanoes are openings in the crust.", True),
    ("lowercase", None, "Volcanoes are openings in the crust.", False),
    ("uppercase", None, "VOLCANOES ERUPT, OFTEN!", True),
    ("uppercase", None, "VOLCANOES ERUPt.", False),
    ("max_words", 5, "One two three four five.", True),
    ("max_words", 5, "One two three four five six.", False),
    ("max_words", 3, "<<Big Hot Volcanoes>>", True),  # title words count, markup does not
    ("min_sentences", 2, "Lava is hot. It glows!", True),
    ("min_sentences", 3, "Lava is hot. It glows!", False),
    ("min_sentences", 2, "<<Lava>>\nLava is hot.", False),  # a title is not a sentence
    ("end_question", None, "Have you seen a volcano?", True),
    ("end_question", None, "Have you seen a volcano? I have.", False),
    ("end_question", None, '"Have you seen a volcano?"', False),
    ("end_phrase", "Hope this helps.", "Lava is hot. Hope this helps.", True),
    ("end_phrase", "Hope this helps.", "Lava is hot. hope this helps.", False),
    ("end_phrase", "Hope this helps.", "Hope this helps. Lava is hot.", False),
    ("include_word", "history", "The HISTORY of volcanoes is long.", True),
    ("include_word", "history", "Volcanoes are historic.", False),  # whole word only
    ("start_word", "Today", '"Today we look at lava."', True),  # leading punctuation skipped
    ("start_word", "Today", "today we look at lava.", True),
    ("start_word", "Today", "Yesterday we looked at lava.", False),
    ("no_commas", None, "Lava is hot and bright.", True),
    ("no_commas", None, "Lava is hot, and bright.", False),
    ("bullets", 2, "Tips:\n* Read a book.\n* Ask an expert.", True),
    ("bullets", 2, "* Read a book.\n* Ask an expert.\n* Visit a museum.", False),
    ("bullets", 2, "- Read a book.\n- Ask an expert.", False),
    ("bullets", 2, "*Read a book.\n*Ask an expert.", False),  # the marker is "* "
    ("title", None, "<<All About Lava>>\nLava is hot.", True),
    ("title", None, "<All About Lava>\nLava is hot.", False),
    ("title", None, "<<>> Lava is hot.", False),
    ("quotation", None, '"Lava is hot."', True),
    ("quotation", None, "“Lava is hot.”", True),
    ("quotation", None, '"Lava" is hot.', False),
]


@pytest.mark.parametrize(("kind", "value", "answer", "expected"), CASES)
def test_each_checker_on_hand_written_answers(kind, value, answer, expected):
    assert Constraint(kind, value).check(answer) is expected


def test_every_kind_has_a_meeting_and_a_failing_case():
    assert {c[0] for c in CASES if c[3]} == set(KIND_NAMES) == {c[0] for c in CASES if not c[3]}
    assert len(KIND_NAMES) >= 8


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_an_answer_without_words_meets_no_constraint(kind):
    value = KINDS[kind].choices[0] if KINDS[kind].choices else None
    for empty in ("", "   ", "?!", '""'):
        assert not Constraint(kind, value).check(empty)


def test_word_and_sentence_rules():
    assert words("Don't stop: <<Big Lava>> * 42 times!") == ["Don't", "stop", "Big", "Lava", "42", "times"]
    assert count_sentences("One. Two! Three?\n* four\nfive") == 5
    assert count_sentences("<<Title>>\nOnly one sentence here.") == 1


def test_an_answer_made_only_of_questions_asks_back():
    # what notebook 06's iterates learned to write for "end your answer with a question mark"
    assert only_questions("What would you like to know about running?")
    assert only_questions('<<Tea>>\nWhy tea? "Which kind do you like?"')
    assert not only_questions("Running builds stamina. What do you need to know?")
    assert not only_questions("Why? Because it is fun.")
    assert not only_questions("?")  # no words, no question


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_round_trips_through_the_prompt_text(kind):
    values = KINDS[kind].choices or (None,)
    for value in values:
        c = Constraint(kind, value)
        prompt = make_prompt(TASKS[0], "volcanoes", [c])
        assert c.describe() in prompt
        assert parse_constraints(prompt) == [c]
        assert constraints_from_spec([c.to_spec()]) == [c]


def test_two_constraints_parse_back_in_prompt_order():
    a, b = Constraint("max_words", 20), Constraint("start_word", "Today")
    assert parse_constraints(make_prompt(TASKS[3], "the moon", [b, a])) == [b, a]
    assert prompt_topic(make_prompt(TASKS[3], "the moon", [b, a])) == "the moon"


def test_unknown_kind_and_bad_parameters_are_clear_errors():
    with pytest.raises(DNOInputError, match=r"unknown constraint kind 'shout'.*lowercase.*quotation"):
        constraints_from_spec([{"kind": "shout"}])
    with pytest.raises(DNOInputError, match="unknown constraint kind 'shout'"):
        Constraint("shout")
    with pytest.raises(DNOInputError, match=r"takes the keys \['kind', 'n'\]"):
        constraints_from_spec([{"kind": "max_words"}])
    with pytest.raises(DNOInputError, match="positive integer"):
        Constraint("max_words", 0)
    with pytest.raises(DNOInputError, match="takes no parameter"):
        Constraint("no_commas", 3)
    with pytest.raises(DNOInputError, match="'kind' key"):
        constraints_from_spec(["lowercase"])


# --- prompt table and teacher --------------------------------------------------------------------

@pytest.fixture(scope="module")
def table():
    return make_prompt_table(1500, seed=0)


def test_prompt_table_is_deterministic_distinct_and_flags_heldout_kinds(table):
    assert make_prompt_table(50, seed=0) == table[:50]
    assert make_prompt_table(50, seed=1) != table[:50]
    assert len({row["prompt"] for row in table}) == 1500
    for row in table:
        assert set(row) == {"prompt", "gold", "kinds", "heldout"}
        assert [c.kind for c in parse_constraints(row["prompt"])] == row["kinds"]
        assert 1 <= len(row["kinds"]) <= 2
        assert all(frozenset(row["kinds"]) != pair for pair in INCOMPATIBLE)
        assert row["heldout"] == bool(set(row["kinds"]) & set(HELDOUT_KINDS))
        assert prompt_topic(row["prompt"]) is not None
    heldout = [row["heldout"] for row in table]
    assert 0.1 < np.mean(heldout) < 0.4  # two of twelve kinds, one or two per prompt
    assert {k for row in table for k in row["kinds"]} == set(KIND_NAMES)


def test_prompt_table_options_and_errors():
    assert not any(row["heldout"] for row in make_prompt_table(100, seed=2, heldout_kinds=()))
    assert all(len(row["kinds"]) == 1 for row in make_prompt_table(50, seed=2, two_constraint_share=0.0))
    with pytest.raises(DNOInputError, match="unknown held-out constraint kind"):
        make_prompt_table(10, seed=0, heldout_kinds=("shout",))


def test_teacher_satisfaction_is_in_band_and_fails_only_by_its_stated_lapses(table):
    rows = table[:400]
    met = []
    for row in rows:
        ok = constraints_met(row["prompt"], row["gold"])
        failed = {c.kind for c, good in zip(parse_constraints(row["prompt"]), ok, strict=True) if not good}
        assert failed == lapses(row["prompt"]), row
        assert all(constraints_met(row["prompt"], teacher_answer(row["prompt"], with_lapses=False)))
        met.append(all(ok))
    assert 0.75 <= np.mean(met) <= 0.85
    lower = [row for row in rows if "lowercase" in row["kinds"]]
    assert lower and all("lowercase" in lapses(row["prompt"]) for row in lower)  # share 1.0
    bullets = [row for row in rows if "bullets" in row["kinds"]]
    share = np.mean(["bullets" in lapses(row["prompt"]) for row in bullets])
    assert abs(share - TEACHER_LAPSES["bullets"]) < 0.2


def test_teacher_writes_finished_real_english(table):
    for row in table[:300]:
        gold = row["gold"].strip().strip('"')
        assert gold[-1] in ".?", row
        f = features(row["prompt"], row["gold"])
        assert f.real == 1.0 and f.mentions >= 1, row


# --- judges --------------------------------------------------------------------------------------

VOLCANO = "Write a short note about volcanoes. Do not use any commas."
# A Condorcet triple for the panel: all meet the one constraint, all real words, all finished.
#   concise (fewer words):  A (5) > B (8) > C (11)
#   on topic (mentions):    B (3) > C (2) > A (1)
#   plain wording (common): C > A > B
# A ≻ B (concise, plain), B ≻ C (concise, on topic), C ≻ A (on topic, plain).
A = "A volcano smolders very hot."
B = "Volcanic calderas and volcanoes exhale sulfurous volcano magma."
C = "There are a lot of volcanoes and the volcano is big."


def test_the_hand_built_triple_has_the_stated_criteria():
    fa, fb, fc = (features(VOLCANO, x) for x in (A, B, C))
    assert (fa.n_words, fb.n_words, fc.n_words) == (5, 8, 11)
    assert (fa.mentions, fb.mentions, fc.mentions) == (1, 3, 2)
    assert fc.common > fa.common + 0.1 > fb.common + 0.2
    assert all(f.met == (True,) and f.real == 1.0 for f in (fa, fb, fc))


def test_panel_judge_makes_a_condorcet_cycle():
    judge = PanelJudge()
    p = judge.preference([VOLCANO] * 3, [A, B, C], [B, C, A])
    assert np.allclose(p, 1 / (1 + math.exp(-1.5)))  # equal q: the majority's c = 1.5 alone
    W = win_matrix(judge, VOLCANO, [A, B, C])
    assert cyclic_triple_share(W) == 1.0 == cyclic_share(judge, VOLCANO, [A, B, C])


def test_panel_judge_is_a_valid_general_preference(table):
    rng = np.random.default_rng(0)
    rows = [table[i] for i in rng.choice(len(table), 200, replace=False)]
    prompts = [r["prompt"] for r in rows]
    first = [r["gold"] for r in rows]
    second = [rows[i]["gold"] for i in rng.permutation(len(rows))]  # an answer to another prompt
    fin_a, fin_b = rng.random(200) < 0.7, rng.random(200) < 0.7
    judge = PanelJudge()
    assert judge.sees_finished and judge.invalid_count == 0
    p = judge.preference(prompts, first, second, fin_a, fin_b)
    q = judge.preference(prompts, second, first, fin_b, fin_a)
    assert p.shape == (200,) and ((p >= 0) & (p <= 1)).all()
    assert np.allclose(p + q, 1.0)


def test_constraints_outweigh_the_panel_and_a_cut_loses_to_the_same_answer_finished():
    judge = PanelJudge()
    # One constraint of one: k·1 = 2 beats any majority (1.5); here concise and plain wording
    # favour the comma answer (4 vs 7 words), on topic favours neither: σ(2 − 1.5).
    p = judge.preference([VOLCANO], ["Volcanoes erupt with ash."], ["Volcanoes erupt, with ash, smoke and lava."])
    assert p[0] > 0.5
    same = judge.preference([VOLCANO] * 2, [C, C], [C, C], first_finished=[True, False],
                            second_finished=[False, True])
    assert np.allclose(same, [1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(1.0))])  # k·½ = 1
    with pytest.raises(ValueError, match="finished flags"):
        judge.preference([VOLCANO], [C], [C], first_finished=[True, True])


def test_panel_gives_no_credit_for_instructions_met_with_nonsense():
    # "cheesemlighter" meets no_commas but is one non-word, off topic and a stub:
    # q = 1 − 1·(1 − 0) − 0.5 − 0.5 = −1. The comma answer meets nothing, names the topic and
    # has 5 words: q = 0. Concise votes for the stub, on topic and plain wording for the real
    # answer: P = σ(2·(0 − (−1)) + 1.5).
    p = PanelJudge().preference([VOLCANO], ["Volcanoes erupt, with hot ash."], ["cheesemlighter"])
    assert p[0] == pytest.approx(1 / (1 + math.exp(-(2 + 1.5))))
    # and a real answer that is off topic, or a stub, is marked down by ½ in q (k·½ = 1)
    judge = PanelJudge(vote_weight=0.0)
    on, off = "Volcanoes erupt with hot ash today.", "Rivers flow with cold water today."
    assert judge.preference([VOLCANO], [on], [off])[0] == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert judge.preference([VOLCANO], [on], ["Volcanoes erupt."])[0] == pytest.approx(1 / (1 + math.exp(-1.0)))


def test_heldout_judge_is_not_fooled_by_nonsense_that_meets_the_constraints():
    judge = HeldoutJudge()
    real = "Volcanoes form where hot rock, gas and ash escape from inside the Earth."  # has commas
    for nonsense, h in (("cheesemlighter", 0.0), ("Many apples.", 0.2), ("qzx vbwk plmr", 0.0)):
        assert constraints_met(VOLCANO, nonsense) == [True]
        assert judge.score([VOLCANO], [nonsense])[0] == pytest.approx(h)
        # sense 1 and no constraint met: h = 1·(1 + 0)/2 = ½; P = σ(10·(½ − h))
        assert judge.preference([VOLCANO], [real], [nonsense])[0] == pytest.approx(
            1 / (1 + math.exp(-10 * (0.5 - h))))
    assert judge.score([VOLCANO], [real], finished=[False])[0] == pytest.approx(0.25)
    assert judge.sees_finished and judge.invalid_count == 0


def test_both_judges_mark_down_an_answer_that_only_asks_back():
    prompt = "Tell me something interesting about running. End your answer with a question mark."
    ask = "What would you like to know about running?"            # meets it, does not answer
    answer = "Running builds stamina and strong legs. Do you run?"  # meets it and answers
    ignore = "Running builds stamina and strong legs every day."     # answers, ignores it
    assert constraints_met(prompt, ask) == constraints_met(prompt, answer) == [True]
    assert sense(features(prompt, ask)) == 0.5 and sense(features(prompt, answer)) == 1.0
    # held-out: h = sense·(1 + met)/2, so asking back (½·1) is worth ignoring the instruction (1·½)
    heldout = HeldoutJudge()
    assert list(heldout.score([prompt] * 3, [ask, answer, ignore])) == pytest.approx([0.5, 1.0, 0.5])
    # panel: q = met − 1·[only questions]: 0 for asking back, 1 for answering, 0 for ignoring
    panel = PanelJudge()
    assert list(panel.quality([prompt] * 3, [ask, answer, ignore])) == pytest.approx([0.0, 1.0, 0.0])
    assert response_metrics([prompt] * 3, [ask, answer, ignore])["asks_back_share"] == pytest.approx(1 / 3)


def test_sense_score_rules():
    f = features(VOLCANO, "Many apples.")  # 2 real words, off topic: 1 · 2/5 · ½ · 1
    assert sense(f) == pytest.approx(0.2)
    f = features(VOLCANO, "volcanoes " * 6)  # one word six times: variety (1/6)/½ = ⅓
    assert sense(f) == pytest.approx(1 / 3)
    assert sense(features(VOLCANO, "Mountains don't erupt like volcanoes do.")) == 1.0  # plural, contraction


def test_response_metrics_on_a_hand_built_set():
    trained = "Describe the moon in simple words. Use only lowercase letters. Answer in at most 12 words."
    held = 'Share a fun fact about owls. End your answer with the exact phrase "Hope this helps.".'
    prompts = [trained, trained, held]
    answers = ["the moon is bright tonight.",                     # both met
               "The Moon is bright tonight and every night, as seen from up here.",  # neither
               "Owls fly at night. Hope this helps."]             # met
    m = response_metrics(prompts, answers, finished=[True, False, True])
    assert m["all_constraints_met"] == pytest.approx(2 / 3)
    assert m["constraints_met"] == pytest.approx(3 / 5)
    assert m["trained_kinds_all_met"] == pytest.approx(1 / 2)
    assert m["heldout_kinds_all_met"] == 1.0
    assert m["per_kind"] == {"end_phrase": 1.0, "lowercase": 0.5, "max_words": 0.5}
    assert m["cut_share"] == pytest.approx(1 / 3)
    assert m["mean_words"] == pytest.approx((5 + 13 + 7) / 3)
    assert m["real_word_share"] == 1.0 and m["sense"] == 1.0 and m["asks_back_share"] == 0.0
    assert math.isnan(response_metrics([trained], ["the moon."])["heldout_kinds_all_met"])
    assert PanelJudge().response_metrics(prompts, answers) == HeldoutJudge().response_metrics(prompts, answers)


# --- the correcting teacher ----------------------------------------------------------------------

TEA = "Write a short note about tea."


@pytest.mark.parametrize(("constraint", "answer", "finished", "expected"), [
    # capitals only; the unfinished last sentence of a cut answer is dropped
    ("Write your entire answer in capital letters.", "Tea is a drink, loved by many. It comes from", False,
     "TEA IS A DRINK, LOVED BY MANY."),
    # commas removed, nothing else touched
    ("Do not use any commas.", "Tea is a drink, loved by many. People brew it daily.", True,
     "Tea is a drink loved by many. People brew it daily."),
    # an answer that already meets its constraint is kept as it is
    ("Do not use any commas.", "Tea is calm. People love it.", True, "Tea is calm. People love it."),
    # the start word comes from a fixed opening sentence in front of the student's text
    ('Start your answer with the word "Today".', "Tea is calm.", True,
     "Today we take a quick look at tea. Tea is calm."),
    # a word limit drops whole sentences from the end
    ("Answer in at most 12 words.", "Tea is calm and warm. People in many lands brew it every single day.", True,
     "Tea is calm and warm."),
    # a list marker and a trailing colon do not survive; the sentences stay
    ("Do not use any commas.", "Here is a note:\n1. Tea is old.\n2. Tea is green.", True,
     "Here is a note. Tea is old. Tea is green."),
])
def test_the_correcting_teacher_changes_only_what_the_constraint_needs(constraint, answer, finished, expected):
    assert corrected_answer(f"{TEA} {constraint}", answer, finished) == expected


def test_corrections_of_titles_questions_and_bullets_keep_the_students_sentences():
    title = corrected_answer(f"{TEA} Give your answer a title wrapped in double angle brackets, like <<title>>.",
                             "Tea is calm.")
    assert title.split("\n", 1)[1] == "Tea is calm." and title.startswith("<<") and "Tea" in title.split("\n")[0]
    question = corrected_answer(f"{TEA} End your answer with a question mark.", "Tea is calm. It is old.")
    assert question.startswith("Tea is calm. It is old. ") and question.endswith("?")
    prompt = f'{TEA} Use exactly 3 bullet points, each on its own line starting with "* ".'
    bullets = corrected_answer(prompt, "Tea is calm. It is old. It is green. It is hot.")
    n = 3 + ("bullets" in lapses(prompt))  # the teacher's lapse: one bullet too many on half the prompts
    assert bullets.split("\n") == [f"* {s}" for s in ["Tea is calm.", "It is old.", "It is green.", "It is hot."][:n]]


def test_the_correcting_teacher_keeps_its_lapses_and_falls_back_to_the_template(table):
    lower = next(row["prompt"] for row in table if row["kinds"] == ["lowercase"])
    gold, corrected = correcting_teacher(lower, ["Tea Is Calm."], [True], "fallback")
    assert corrected and gold == "Tea Is Calm."  # never lowercases: the student can beat it
    quote = next(row["prompt"] for row in table if row["kinds"] == ["quotation"])
    assert correcting_teacher(quote, ["Tea is calm."], [True], "fallback") == ("fallback", False)  # no rule for it


def test_the_correcting_teacher_corrects_the_sample_that_meets_most(table):
    prompt = f'{TEA} Do not use any commas. Include the word "history".'
    answers = ["Tea, hot tea, is calm.", "Tea has a long history, and fans.", "The history of tea is long."]
    assert correcting_teacher(prompt, answers, [True] * 3, "fallback") == ("The history of tea is long.", True)
    rows = [row for row in table[:600] if not row["heldout"]]
    cut = "Many people drink it, and some grow it at home. Its history goes back a long way, and the"
    met = []
    for row in rows:
        gold, corrected = correcting_teacher(row["prompt"], [cut], [False], row["gold"])
        ok = constraints_met(row["prompt"], gold)
        failed = {c.kind for c, good in zip(parse_constraints(row["prompt"]), ok, strict=True) if not good}
        assert failed <= lapses(row["prompt"]), (row, gold)
        met.append(corrected)
    assert np.mean(met) > 0.95  # a plain two-sentence answer can be corrected for nearly every prompt
