"""Evaluating a finished run again (dnolab.lm.reevaluate): the training stages are reused as they
are, the evaluation is the engine's own, and settings that made the reused stages cannot change."""

import json

import pytest
import yaml
from lm_helpers import save_toy_policy

from dnolab import cli
from dnolab.lm.config import from_dict
from dnolab.lm.errors import ConfigError
from dnolab.lm.loop import run_dno
from dnolab.lm.reevaluate import reevaluate_run
from dnolab.lm.rundir import RunDir, load_rows


def _without_times(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("timings", "reused_stages")}


def _snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A toy run of two iterations, one answer per evaluation prompt."""
    tmp = tmp_path_factory.mktemp("reeval")
    config = from_dict({
        "name": "source", "output_dir": str(tmp / "runs"), "iterations": 2, "prompts_per_iteration": 24,
        "samples_per_prompt": 2, "model": {"name_or_path": str(save_toy_policy(tmp / "pi1"))},
        "sampling": {"max_new_tokens": 8, "batch_size": 32}, "training": {"batch_size": 8},
        "eval": {"prompts": 60, "validation_prompts": 8, "samples_per_prompt": 1,
                 "heldout_judges": [{"label": "quality", "kind": "toy", "transitive_only": True}]}})
    run_dno(config, show_progress=False)
    return config.run_dir()


def test_the_same_settings_repeat_every_metric_without_training(finished_run):
    before = _snapshot(finished_run)
    summary = reevaluate_run(finished_run, "again", {"eval.samples_per_prompt": 1}, show_progress=False)
    source = json.loads((finished_run / "summary.json").read_text())
    assert summary["iterations_done"] == 2
    for old, new in zip(source["per_iteration"], summary["per_iteration"], strict=True):
        assert _without_times(new) == _without_times(old)
    for t in (1, 2):
        assert set(summary["per_iteration"][t]["reused_stages"]) >= {"sampling", "judging", "pairs", "training"}
        weights = next((finished_run / f"iter_{t:02d}" / "policy").glob("*.safetensors"))
        copy = finished_run.parent / "again" / weights.relative_to(finished_run)
        assert copy.stat().st_ino == weights.stat().st_ino  # a hard link, not a second training
    assert _snapshot(finished_run) == before  # the source is only read


def test_more_answers_per_prompt_narrow_the_intervals(finished_run):
    summary = reevaluate_run(finished_run, "three", {"eval.samples_per_prompt": 3}, show_progress=False)
    source = json.loads((finished_run / "summary.json").read_text())
    rows = load_rows(RunDir(finished_run.parent / "three").stage(2, "eval_samples")).to_list()
    assert len(rows) == 60 and {len(r["responses"]) for r in rows} == {3}
    for old, new in zip(source["per_iteration"][1:], summary["per_iteration"][1:], strict=True):
        for before, after in ((old, new), (old["heldout"]["quality"], new["heldout"]["quality"])):
            wide, narrow = before["head_to_head_vs_previous"]["ci95"], after["head_to_head_vs_previous"]["ci95"]
            assert narrow < 0.75 * wide, (wide, narrow)  # about 1/√3 where the answers' noise dominates
    stored = yaml.safe_load((finished_run.parent / "three" / "config.yaml").read_text())
    assert stored["eval"]["samples_per_prompt"] == 3 and stored["training"] == yaml.safe_load(
        (finished_run / "config.yaml").read_text())["training"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"training.beta": 0.5}, "only eval.samples_per_prompt, eval.heldout_judges can change"),
    ({"eval.prompts": 30}, "they share one pool of prompts with the iterations"),
    ({}, "nothing to change"),
])
def test_settings_that_made_the_reused_stages_cannot_change(finished_run, changes, message):
    with pytest.raises(ConfigError, match=message):
        reevaluate_run(finished_run, "changed", changes, show_progress=False)
    assert not (finished_run.parent / "changed").exists()


def test_another_training_judge_is_refused_and_leaves_nothing(finished_run):
    from dnolab.lm.toy import ToyJudge

    other = ToyJudge(transitive_only=True)
    with pytest.raises(ConfigError, match="trained under another judge"):
        reevaluate_run(finished_run, "judged", {"eval.samples_per_prompt": 2}, show_progress=False, judge=other)
    assert not (finished_run.parent / "judged").exists()


def test_the_command_names_a_bad_source_and_a_bad_name(finished_run, tmp_path, capsys):
    assert cli.main(["reevaluate", str(tmp_path), "--name", "x", "--set", "eval.samples_per_prompt=2"]) == 2
    assert "is not a run folder (no config.yaml)" in capsys.readouterr().err
    assert cli.main(["reevaluate", str(finished_run), "--name", "source", "--set", "eval.samples_per_prompt=2"]) == 2
    assert "needs a new folder name" in capsys.readouterr().err
