"""The DNO loop end to end: the smoke config, kill-and-resume, the run directory's guards,
judge failures, and the Hub path on tiny models saved to disk."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT
from lm_helpers import (
    save_tiny_chat_model,
    save_tiny_reward_model,
    save_toy_policy,
    write_prompt_file,
)

from dnolab.lm.config import ConfigError, from_dict, load_config
from dnolab.lm.data import DNOInputError
from dnolab.lm.errors import InvalidJudgmentsError
from dnolab.lm.loop import CorruptRunError, run_dno
from dnolab.lm.rundir import RunDir, load_rows

SMOKE = ROOT / "configs" / "toy_smoke.yaml"


def _cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "dnolab.cli", "dno", "--no-progress", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _files(run: Path, iteration: int) -> dict[str, tuple[int, int]]:
    folder = run / f"iter_{iteration:02d}"
    return {str(p.relative_to(run)): (p.stat().st_mtime_ns, p.stat().st_ino)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """configs/toy_smoke.yaml, uninterrupted, through the CLI."""
    out = tmp_path_factory.mktemp("smoke")
    start = time.perf_counter()
    proc = _cli("--config", str(SMOKE), "--set", f"output_dir={out}")
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    return out / "toy_smoke", time.perf_counter() - start


def test_smoke_run_raises_win_rate_against_the_teacher(smoke_run):
    run, seconds = smoke_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations_done"] == 3
    wr = [m["win_rate_vs_teacher"]["mean"] for m in summary["per_iteration"]]
    assert wr[-1] > wr[0] + 0.05, wr
    assert all(m["head_to_head_vs_previous"]["mean"] > 0.5 for m in summary["per_iteration"][1:3])
    for t in (1, 2, 3):
        losses = RunDir(run).read_train_log(t)["losses"]
        assert losses[0] == pytest.approx(math.log(2), abs=1e-5)  # policy == reference at step 0
    print(f"smoke run: {seconds:.0f} s, win rate {wr}")


def test_killed_run_resumes_without_redoing_or_losing_anything(smoke_run, tmp_path):
    reference_run, _ = smoke_run
    args = ["--config", str(SMOKE), "--set", f"output_dir={tmp_path}"]
    run = tmp_path / "toy_smoke"
    proc = _cli(*args, start_new_session=True)
    deadline = time.time() + 600
    while not (run / "iter_02" / "pairs").exists():  # iteration 2 half done
        assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "iter_02" / "metrics.json").exists()
    before = {t: _files(run, t) for t in (0, 1)}
    stages_before = {k: v for k, v in _files(run, 2).items() if k.split("/")[1] in {"samples", "judgments", "pairs"}}

    resumed = _cli(*args)
    log, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log
    for t in (0, 1):  # finished iterations untouched (same files, same inodes, same mtimes)
        assert _files(run, t) == before[t]
    after2 = _files(run, 2)
    assert {k: after2[k] for k in stages_before} == stages_before  # finished stages not redone
    # and nothing lost: the resumed run ends exactly where an uninterrupted one does
    ours = json.loads((run / "summary.json").read_text())["per_iteration"]
    theirs = json.loads((reference_run / "summary.json").read_text())["per_iteration"]
    for a, b in zip(ours, theirs, strict=True):
        assert a["win_rate_vs_teacher"] == b["win_rate_vs_teacher"]
        assert a.get("training_data") == b.get("training_data")


# --- small, fast runs from a saved (untrained) toy policy ----------------------------------------

@pytest.fixture(scope="module")
def toy_policy(tmp_path_factory):
    return save_toy_policy(tmp_path_factory.mktemp("policy") / "pi1")


def tiny_config(out, policy, **extra):
    data = {"name": "tiny", "output_dir": str(out), "iterations": 1, "prompts_per_iteration": 24,
            "samples_per_prompt": 3, "model": {"name_or_path": str(policy)},
            "sampling": {"max_new_tokens": 8, "batch_size": 12},
            "training": {"batch_size": 8, "learning_rate": 1e-3},
            "eval": {"prompts": 12, "validation_prompts": 6, "samples_per_prompt": 1}}
    for key, value in extra.items():
        data[key] = value
    return from_dict(data)


def test_run_directory_layout_and_trl_ready_pairs(tmp_path, toy_policy):
    from datasets import load_from_disk

    summary = run_dno(tiny_config(tmp_path, toy_policy), show_progress=False)
    run = tmp_path / "tiny"
    assert summary["iterations_done"] == 1 and (run / "summary.json").exists()
    for name in ("samples", "judgments", "pairs", "policy", "eval_samples", "metrics.json", "train_log.json"):
        assert (run / "iter_01" / name).exists(), name
    pairs = load_from_disk(str(run / "iter_01" / "pairs"))
    assert {"prompt", "chosen", "rejected", "target", "type"} <= set(pairs.column_names)
    assert all(c.startswith(" ") for c in pairs["chosen"])  # TRL's raw-text completion convention
    assert not list(run.rglob(".*.tmp"))  # no half-written stage left behind


def test_config_change_on_rerun_is_refused(tmp_path, toy_policy):
    run_dno(tiny_config(tmp_path, toy_policy), show_progress=False)
    with pytest.raises(ConfigError, match=r"different config \(training.beta: 1.0 -> 0.5\)"):
        run_dno(tiny_config(tmp_path, toy_policy, training={"batch_size": 8, "learning_rate": 1e-3,
                                                            "beta": 0.5}), show_progress=False)
    # only `iterations` may change: extending a finished run continues it
    summary = run_dno(tiny_config(tmp_path, toy_policy, iterations=2), show_progress=False)
    assert summary["iterations_done"] == 2


def test_a_run_resumes_from_another_working_directory(tmp_path, toy_policy, monkeypatch):
    """Started as ``runs/tiny`` from the repository root, resumed as ``../runs/tiny`` from
    ``notebooks/`` (as notebook 06 resumes a run made by ``dnolab reevaluate``): the same run."""
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path)
    run_dno(tiny_config(Path("runs"), toy_policy), show_progress=False)
    monkeypatch.chdir(tmp_path / "notebooks")
    summary = run_dno(tiny_config(Path("../runs"), toy_policy, iterations=2), show_progress=False)
    assert summary["iterations_done"] == 2


def test_a_run_started_before_a_new_option_resumes_at_its_default(tmp_path, toy_policy):
    """A setting added to dnolab later is absent from an older run's config.yaml: at its default
    the run resumes; set to anything else, it is refused."""
    config = tiny_config(tmp_path, toy_policy)
    run_dno(config, show_progress=False)
    stored_path = config.run_dir() / "config.yaml"
    stored = yaml.safe_load(stored_path.read_text())
    del stored["training"]["nll_weight"], stored["training"]["lora_rank"]
    stored_path.write_text(yaml.safe_dump(stored, sort_keys=False))
    with pytest.raises(ConfigError, match=r"different config \(training.nll_weight: None -> 0.5\)"):
        run_dno(tiny_config(tmp_path, toy_policy, training={"batch_size": 8, "learning_rate": 1e-3,
                                                            "nll_weight": 0.5}), show_progress=False)
    assert run_dno(config.replace(iterations=2), show_progress=False)["iterations_done"] == 2


def test_a_changed_judge_object_on_rerun_is_refused(tmp_path, toy_policy):
    """A judge passed in code is not in the config; the run folder records its settings."""
    from dnolab.lm.toy import ToyJudge

    config = tiny_config(tmp_path, toy_policy)
    run_dno(config, show_progress=False, judge=ToyJudge(cycle_weight=2.0))
    stored = yaml.safe_load((config.run_dir() / "judges.yaml").read_text())
    assert stored["train"]["class"] == "dnolab.lm.toy.ToyJudge" and stored["train"]["cycle_weight"] == 2.0
    with pytest.raises(ConfigError, match=r"different judges \(train.cycle_weight: 2.0 -> 1.0\)"):
        run_dno(config, show_progress=False, judge=ToyJudge(cycle_weight=1.0))
    summary = run_dno(config.replace(iterations=2), show_progress=False, judge=ToyJudge(cycle_weight=2.0))
    assert summary["iterations_done"] == 2


def test_corrupt_run_directories_are_reported(tmp_path, toy_policy):
    config = tiny_config(tmp_path, toy_policy, iterations=2)
    run_dno(config, show_progress=False)
    run = tmp_path / "tiny"
    metrics = run / "iter_01" / "metrics.json"
    text = metrics.read_text()
    metrics.write_text("{ not json")
    with pytest.raises(CorruptRunError, match=r"iter_01/metrics.json is unreadable.*delete"):
        run_dno(config, show_progress=False)
    metrics.write_text(text)
    (run / "iter_01" / "metrics.json").rename(run / "iter_01" / "metrics.moved")
    with pytest.raises(CorruptRunError, match="iteration 2 finished but iteration 1 is not"):
        run_dno(config, show_progress=False)
    (run / "config.yaml").write_text("- just a list\n")
    with pytest.raises(CorruptRunError, match="does not hold a config"):
        run_dno(config, show_progress=False)


class NanJudge:
    name = "always-nan"

    def preference(self, prompts, first, second):
        return np.full(len(prompts), np.nan)


class OutOfRangeJudge:
    name = "percent"

    def preference(self, prompts, first, second):
        return np.full(len(prompts), 70.0)


def test_a_judge_returning_nan_stops_the_run_with_a_named_error(tmp_path, toy_policy):
    with pytest.raises(InvalidJudgmentsError, match=r"iterate π1 \(iteration 0\) vs the teacher under judge 'train': "
                                                    r"judge 'always-nan' could not decide 12 of 12 comparisons"):
        run_dno(tiny_config(tmp_path, toy_policy), show_progress=False, judge=NanJudge())
    assert not RunDir(tmp_path / "tiny").metrics_path(0).exists()  # no number was reported


def test_a_judge_returning_values_outside_0_1_is_refused(tmp_path, toy_policy):
    with pytest.raises(DNOInputError, match=r"judge 'percent' returned 70.0"):
        run_dno(tiny_config(tmp_path, toy_policy), show_progress=False, judge=OutOfRangeJudge())


def test_use_gold_without_gold_answers_is_refused(tmp_path):
    prompts = write_prompt_file(tmp_path / "p.jsonl", 10)
    config = from_dict({"output_dir": str(tmp_path), "prompts": {"source": str(prompts)},
                        "judge": {"kind": "reward-model",
                                                                       "name_or_path": "x"},
                        "model": {"name_or_path": "x"}})
    with pytest.raises(DNOInputError, match="gold_column"):
        run_dno(config, show_progress=False)


# --- the Hub path, on tiny models saved to disk ------------------------------------------------------

@pytest.fixture(scope="module")
def hub_like(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    return {"policy": save_tiny_chat_model(root / "policy"), "rm": save_tiny_reward_model(root / "rm"),
            "prompts": write_prompt_file(root / "prompts.jsonl", 60)}


def hub_config(out, hub_like, judge):
    return from_dict({
        "name": "hub", "output_dir": str(out), "iterations": 1, "prompts_per_iteration": 8,
        "samples_per_prompt": 2, "max_invalid_share": 1.0,
        "model": {"name_or_path": str(hub_like["policy"]), "chat": True},
        "prompts": {"source": str(hub_like["prompts"]), "gold_column": "chosen"},
        "judge": judge, "sampling": {"max_new_tokens": 6, "batch_size": 8},
        "pairs": {"positive_band": 0.5, "margin_teacher": 0.0, "margin_student": 0.0},
        "training": {"batch_size": 4, "beta": 0.1},
        "eval": {"prompts": 8, "validation_prompts": 4, "samples_per_prompt": 1}})


def test_reward_model_judge_with_the_shipped_hub_margins_makes_the_win_rate_rules_pairs(tmp_path, hub_like):
    """The shipped Hub config's pair rule (band and margins in win-rate units) applied to a
    reward-model judge: the pair rule sees each candidate's win rate against the others,
    mean_j σ(r_i − r_j), never the reward logits r; the pairs are exactly those the rule,
    re-derived here by hand from the saved rewards, predicts."""

    rm = save_tiny_reward_model(tmp_path / "rm", score_scale=300.0)  # rewards a few logits apart
    config = load_config("hub_qwen_ultrafeedback", {
        "output_dir": str(tmp_path), "iterations": 1, "prompts_per_iteration": 12, "replay": [],
        "model.name_or_path": str(hub_like["policy"]), "model.dtype": "float32",
        "prompts.source": str(hub_like["prompts"]), "prompts.split": "train", "prompts.limit": None,
        "judge.name_or_path": str(rm), "sampling.max_new_tokens": 6, "sampling.batch_size": 12,
        "training.batch_size": 4, "training.gradient_accumulation_steps": 1,
        "eval.prompts": 8, "eval.validation_prompts": 4})
    rule = config.pairs
    run_dno(config, show_progress=False)
    run = RunDir(config.run_dir())
    judged = load_rows(run.stage(1, "judgments")).to_list()
    expected = set()
    for row in judged:
        r = np.array(row["raw_scores"])
        n = len(r)
        wr = np.array([np.mean([1 / (1 + np.exp(-(r[i] - r[j]))) for j in range(n) if j != i]) for i in range(n)])
        np.testing.assert_allclose(row["scores"], wr, atol=1e-6)  # win rates, not logits
        texts, gold = row["candidates"], n - 1
        found = []
        for i in range(n):
            if wr[i] < wr.max() - rule.positive_band or (i != gold and texts[i] == texts[gold]):
                continue
            for j in range(n):
                need = rule.margin_teacher if i == gold else rule.margin_student
                if j != i and wr[i] - wr[j] >= need - 1e-12 and not (j != gold and texts[j] == texts[gold]):
                    found.append((-(wr[i] - wr[j]), i, j))
        kept, seen = [], set()
        for _, i, j in sorted(found):
            if (texts[i], texts[j]) not in seen:
                seen.add((texts[i], texts[j]))
                kept.append((row["prompt"], texts[i], texts[j]))
        expected |= set(kept[: rule.max_pairs_per_prompt])
    pairs = run.pairs(1).to_list()
    assert pairs and expected == {(p["prompt"], p["chosen"], p["rejected"]) for p in pairs}
    assert all(0 <= p["chosen_score"] <= 1 for p in pairs)
    log = run.read_train_log(1)
    assert log["pairs_trained"] == len(pairs) and log["losses"][0] == pytest.approx(math.log(2), abs=1e-5)


def test_an_llm_judge_that_cannot_answer_stops_the_run_instead_of_reporting_nan(tmp_path, hub_like):
    """A random tiny chat model almost never writes 'Winner: A': the evaluation of π₁ says so
    and stops, instead of printing "win rate nan ± nan" and going on."""
    config = hub_config(tmp_path, hub_like, {"kind": "llm-pairwise", "retries": 1, "max_new_tokens": 8,
                                             "name_or_path": str(hub_like["policy"])}).replace(max_invalid_share=0.5)
    with pytest.raises(InvalidJudgmentsError, match=r"iterate π1 \(iteration 0\) vs the teacher .* could not decide"):
        run_dno(config, show_progress=False)


def test_shipped_hub_config_names_hub_ids_only():
    config = load_config(ROOT / "configs" / "hub_qwen_ultrafeedback.yaml")
    assert config.model.chat and config.prompts.gold_column == "chosen"
    assert not Path(config.model.name_or_path).exists()  # a Hub id, resolved at run time


def test_replay_adds_a_share_of_earlier_pairs(tmp_path, toy_policy):
    config = tiny_config(tmp_path, toy_policy, iterations=2, replay=[0.5])
    run_dno(config, show_progress=False)
    first, second = RunDir(tmp_path / "tiny").read_train_log(1), RunDir(tmp_path / "tiny").read_train_log(2)
    assert first["pairs_trained"] == first["pairs_new"]  # nothing to replay yet
    expected = second["pairs_new"] + min(first["pairs_new"], round(0.5 * second["pairs_new"]))
    assert second["pairs_trained"] == expected > second["pairs_new"]


def test_soft_label_mode_trains_on_every_candidate_pair(tmp_path, toy_policy):

    run_dno(tiny_config(tmp_path, toy_policy, pairs={"mode": "soft"}), show_progress=False)
    pairs = RunDir(tmp_path / "tiny").pairs(1)
    judged = load_rows(RunDir(tmp_path / "tiny").stage(1, "judgments"))
    usable = [len(d) - sum(d) for d in judged["degenerate"]]  # automatic negatives sit out
    assert len(pairs) == sum(n * (n - 1) // 2 for n in usable) > 0  # every remaining pair of the K + 1
    assert 0 < min(pairs["target"]) and max(pairs["target"]) < 1


@pytest.mark.parametrize("stage", ["training", "sampling"])
def test_bf16_on_a_cpu_without_bf16_instructions_warns_and_names_the_fix(tmp_path, toy_policy, monkeypatch, stage):
    """Without AMX or AVX512-BF16 torch emulates bf16 matrix products (on an AVX2 machine here a
    SmolLM2 training step took minutes): asking for bf16 there warns; where the CPU has them,
    or where bf16 is left off, nothing is said."""
    import warnings

    from dnolab.lm import loop

    section = {"training": {"batch_size": 8, "learning_rate": 1e-3, "bf16": True},
               "sampling": {"max_new_tokens": 8, "batch_size": 12, "bf16": True}}[stage]
    config = tiny_config(tmp_path, toy_policy, **{stage: section})
    monkeypatch.setattr(loop, "cpu_has_bf16_matmul", lambda: False)
    with pytest.warns(UserWarning, match=rf"{stage}.bf16 asked for bfloat16.*neither AMX nor AVX512-BF16.*"
                                         r"training.bf16: auto and sampling.bf16: false"):
        loop.DNORun(config, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loop.DNORun(tiny_config(tmp_path / "off", toy_policy), show_progress=False)
        monkeypatch.setattr(loop, "cpu_has_bf16_matmul", lambda: True)
        loop.DNORun(config, show_progress=False)


def test_the_bf16_check_reads_the_cpus_instruction_sets(monkeypatch):
    import torch

    from dnolab.lm.trainer import cpu_has_bf16_matmul

    for caps, expected in (({"avx2": True}, False), ({"amx_bf16": True}, True), ({"avx512_bf16": True}, True)):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda caps=caps: caps)
        assert cpu_has_bf16_matmul() is expected
