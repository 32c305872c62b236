"""The ``dnolab`` command: one clear line and exit status 2 for our own input errors, a traceback
for anything else, and ``--set`` / ``--method`` applied as documented."""

import pytest
import yaml
from lm_helpers import save_toy_policy

from dnolab import cli


def _tiny(tmp_path, **extra) -> str:
    data = {"name": "tiny", "output_dir": str(tmp_path / "runs"), "iterations": 1, "prompts_per_iteration": 16,
            "samples_per_prompt": 2, "model": {"name_or_path": str(save_toy_policy(tmp_path / "pi1"))},
            "sampling": {"max_new_tokens": 6, "batch_size": 16}, "training": {"batch_size": 8},
            "eval": {"prompts": 8, "validation_prompts": 4, "samples_per_prompt": 1}, **extra}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(("sets", "message"), [
    (["iterations=abc"], "error: iterations must be an integer, got 'abc' (str)"),
    (["trainng.beta=1"], "error: unknown config section 'trainng' in 'trainng.beta'; valid sections:"),
    (["training.betta=1"], "error: unknown config key 'training.betta'; valid keys in training:"),
    (["iterations"], "error: --set expects key=value"),
])
def test_bad_overrides_print_one_line_and_exit_2(sets, message, capsys):
    args = ["dno", "--config", "toy", "--no-progress"]
    for s in sets:
        args += ["--set", s]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_an_unknown_method_is_an_input_error(capsys):
    assert cli.main(["dno", "--config", "toy", "--method", "dpo2"]) == 2
    assert "unknown method 'dpo2'; choose one of" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    import dnolab.lm.loop

    def broken(*args, **kwargs):
        raise ValueError("a bug, not the user's input")

    monkeypatch.setattr(dnolab.lm.loop, "run_dno", broken)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["dno", "--config", _tiny(tmp_path), "--no-progress"])


def test_method_then_sets_are_applied_and_stored_with_the_run(tmp_path, capsys):
    """--method spin sets pairs.mode: spin; --set then overrides a setting of the method's config."""
    assert cli.main(["dno", "--config", _tiny(tmp_path), "--method", "spin", "--set", "training.beta=0.5",
                     "--set", "replay=[0.3]", "--no-progress"]) == 0
    stored = yaml.safe_load((tmp_path / "runs" / "tiny_spin" / "config.yaml").read_text())
    assert stored["pairs"]["mode"] == "spin" and stored["training"]["beta"] == 0.5 and stored["replay"] == [0.3]
    assert '"iterations_done": 1' in capsys.readouterr().out
