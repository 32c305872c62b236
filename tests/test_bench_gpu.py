"""The prepared GPU check (benchmarks/bench_gpu.py): its model shape, and the script end to end on a CPU."""

import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from transformers import AutoModelForCausalLM, Qwen2Config

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_gpu


def test_the_random_model_has_qwen25_05b_parameter_count():
    # Qwen2.5-0.5B's model card: 0.49B parameters (0.36B without embeddings), tied embeddings
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(Qwen2Config(**bench_gpu.QWEN25_05B))
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    assert round(total / 1e9, 2) == 0.49
    assert round((total - embedding) / 1e9, 2) == 0.36


@pytest.mark.slow
def test_the_gpu_check_runs_on_a_cpu_with_a_tiny_model(tmp_path):
    out = tmp_path / "gpu.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--tiny", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = out.read_text()
    for section in ("One DNO iteration", "| sampling |", "| training |", "Ratio dnolab / plain", "ratio dnolab / TRL"):
        assert section in report
