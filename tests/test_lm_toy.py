"""The toy world's imperfect teacher: its stated slip rule, its wiring from the config, and a
judge that still knows the right answer."""

import itertools

import numpy as np
import pytest

from dnolab.lm.config import ConfigError, DNOConfig, load_config
from dnolab.lm.toy import NO_STYLE, STYLES, ToyJudge, ToyTask, parse_response, quality
from dnolab.lm.world import make_world, toy_world_from_config


def _prompts(n=3000, seed=0):
    return ToyTask().prompts(n, np.random.default_rng(seed))


def test_a_perfect_teacher_is_always_right():
    task = ToyTask(slip_min_digits=None)
    for p in _prompts(500):
        assert parse_response(task.teacher(p))[0] == task.answer(p)
        assert quality(p, task.teacher(p)) == len(task.answer(p))


def test_the_teacher_slips_exactly_on_long_prompts_with_two_unequal_digits_from_the_second_on():
    task = ToyTask(slip_min_digits=6)
    seen_slip = seen_constant_tail = 0
    for p in _prompts():
        answer = task.answer(p)
        digits, style, junk = parse_response(task.teacher(p))
        assert STYLES[style] == "." and junk == 0 and sorted(digits) == answer  # a permutation of the answer
        unequal = any(a != b for a, b in itertools.pairwise(answer[1:]))
        should = len(answer) >= 6 and unequal
        assert task.slips_on(p) == should
        if should:  # two neighbours swapped: exactly two digits out of place, q = n - 2
            seen_slip += 1
            assert sum(a != b for a, b in zip(digits, answer, strict=True)) == 2
            assert quality(p, task.teacher(p)) == len(answer) - 2
            assert digits[0] == answer[0]  # the smallest digit is never moved
        else:
            assert digits == answer
            seen_constant_tail += len(answer) >= 6
    assert seen_slip > 500
    # the hand-made case: 6 digits, sorted 0 0 2 3 5 6: the first unequal neighbours from the
    # 2nd digit on are (0, 2), at positions 2 and 3
    assert task.teacher("sort 6 5 2 3 0 0 =") == "0 2 0 3 5 6 ."
    assert task.teacher("sort 1 1 1 1 1 0 =") == "0 1 1 1 1 1 ."  # nothing unequal to swap
    assert not task.slips_on("sort 9 8 7 6 5 =")  # 5 digits < 6


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_the_slip_share_is_a_fixed_function_of_the_prompt(share):
    task = ToyTask(slip_min_digits=6, slip_share=share)
    always = ToyTask(slip_min_digits=6, slip_share=1.0)
    candidates = [p for p in _prompts(6000) if always.slips_on(p)]
    rate = np.mean([task.slips_on(p) for p in candidates])
    assert abs(rate - share) < 0.04, rate
    again = ToyTask(slip_min_digits=6, slip_share=share)  # another instance, same answers
    assert [task.teacher(p) for p in candidates[:200]] == [again.teacher(p) for p in candidates[:200]]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"slip_min_digits": 2}, "slip_min_digits must be >= 3"),
    ({"slip_share": 1.5}, r"slip_share must be in \[0, 1\]"),
    ({"slip_share": -0.1}, r"slip_share must be in \[0, 1\]"),
])
def test_bad_slip_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ToyTask(**kwargs)


@pytest.mark.parametrize(("data", "message"), [
    ({"teacher_slip_min_digits": 1}, "toy.teacher_slip_min_digits must be >= 3 or null"),
    ({"teacher_slip_share": 2.0}, r"toy.teacher_slip_share must be in \[0, 1\]"),
    ({"teacher_style": "?!"}, "toy.teacher_style must be one of"),
])
def test_bad_slip_settings_in_a_config_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        DNOConfig().replace(**{f"toy.{k}": v for k, v in data.items()})


def test_the_shipped_world_is_the_task_default_and_the_config_wires_the_slip():
    shipped = toy_world_from_config(load_config("toy")).task
    assert shipped == ToyTask()  # ToyTask() is the world of configs/toy.yaml
    assert shipped.slip_min_digits is not None  # the shipped teacher is imperfect
    perfect = toy_world_from_config(load_config("toy", {"toy.teacher_slip_min_digits": None})).task
    assert perfect.slip_min_digits is None
    half = toy_world_from_config(load_config("toy", {"toy.teacher_slip_share": 0.5})).task
    assert half.slip_share == 0.5 and half.slip_min_digits == shipped.slip_min_digits
    loud = toy_world_from_config(load_config("toy", {"toy.teacher_style": "!"})).task
    assert loud.teacher("sort 2 1 =") == "1 2 !"
    # the run's gold answers are the configured teacher's
    for config, wrong in [(load_config("toy"), True), (load_config("toy", {"toy.teacher_slip_min_digits": None}), False)]:
        pool = make_world(config).prompt_pool(400, seed=0)
        mistakes = sum(parse_response(g)[0] != ToyTask.answer(p) for p, g in zip(pool.prompts, pool.gold, strict=True))
        assert (mistakes > 50) == wrong, mistakes


def test_the_judge_prefers_the_right_answer_to_the_teachers_slip():
    task = ToyTask()
    prompt = "sort 6 5 2 3 0 0 ="
    right, slip = "0 0 2 3 5 6 .", task.teacher(prompt)
    assert slip != right
    for judge in (ToyJudge(), ToyJudge(transitive_only=True)):
        p = judge.preference([prompt], [right], [slip])[0]
        assert p == pytest.approx(1 / (1 + np.exp(-2.0 * 2)))  # two digits better, same style
    # the held-out quality judge ignores the style: a right answer in any style beats the slip
    q = ToyJudge(transitive_only=True)
    assert q.preference([prompt], ["0 0 2 3 5 6 ?"], [slip])[0] > 0.98
    assert NO_STYLE == 3


def test_starting_policies_for_many_runs_are_built_from_the_configs_toy_world(tmp_path):
    import json

    from dnolab.lm.experiments import build_toy_policies

    config = load_config("toy", {"toy.sft_steps": 2, "toy.sft_batch_size": 4})
    paths = build_toy_policies(config, [0], tmp_path, workers=1)
    stored = json.loads((paths[0] / "toy_world.json").read_text())
    assert stored == toy_world_from_config(config).to_dict()
    assert stored["sft"]["steps"] == 2 and stored["task"]["slip_min_digits"] == config.toy.teacher_slip_min_digits
    stamp = (paths[0] / "config.json").stat().st_mtime_ns
    assert build_toy_policies(config, [0], tmp_path, workers=1) == paths  # reused, not rebuilt
    assert (paths[0] / "config.json").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match=r"sft_seed0 holds a starting policy built from another toy world"):
        build_toy_policies(config.replace(**{"toy.sft_steps": 3}), [0], tmp_path, workers=1)
