"""The same DNO code under `torchrun --nproc_per_node 2` (CPU, gloo) and in one process."""

import subprocess
import sys

import pytest
import yaml
from lm_helpers import save_toy_policy

from dnolab.lm.rundir import RunDir


def _config(out, policy):
    return {"name": "dist", "output_dir": str(out), "iterations": 2, "prompts_per_iteration": 64,
            "samples_per_prompt": 3, "model": {"name_or_path": str(policy)},
            "sampling": {"max_new_tokens": 8, "batch_size": 16},
            "training": {"batch_size": 8, "learning_rate": 1e-3},
            "eval": {"prompts": 16, "validation_prompts": 8, "samples_per_prompt": 1}}


def _run(cmd, tmp_path, name, policy):
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path / name, policy)))
    proc = subprocess.run([*cmd, "-m", "dnolab.cli", "dno", "--no-progress", "--config", str(config)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp_path / name / "dist"


def test_two_processes_give_the_same_pairs_and_losses_as_one(tmp_path):
    policy = save_toy_policy(tmp_path / "pi1")
    one = _run([sys.executable], tmp_path, "one", policy)
    two = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"],
               tmp_path, "two", policy)
    for t in (1, 2):
        a, b = RunDir(one).pairs(t).to_list(), RunDir(two).pairs(t).to_list()
        assert a == b, f"iteration {t}: pairs differ"
        la, lb = RunDir(one).read_train_log(t)["losses"], RunDir(two).read_train_log(t)["losses"]
        assert len(la) == len(lb) > 1
        assert la == pytest.approx(lb, rel=1e-3, abs=1e-4)
