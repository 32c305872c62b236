"""How torch's CPU thread count changes the speed of the small models this series trains.

Runs the same training step (a 2-layer Llama, hidden 64, batch 32, 24 tokens) and the same
BT fit under several thread settings, each in a fresh process, and writes the ratios to
``benchmarks/results/cpu_threads.md``. ``dnolab.utils.DEFAULT_CPU_THREADS`` is chosen from it.

    python benchmarks/bench_cpu_threads.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_threads.md"

WORKER = r"""
import json, os, sys, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM
threads = int(sys.argv[1])
if threads > 0:
    torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=32, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)
model = LlamaForCausalLM(cfg)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, 32, (32, 24))
def step():
    loss = model(input_ids=x, labels=x).loss
    loss.backward(); opt.step(); opt.zero_grad()
for _ in range(5):
    step()
times = []
for _ in range(30):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"threads": torch.get_num_threads(), "median_s": times[len(times) // 2]}))
"""


def run(threads: int, env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", WORKER, str(threads)], env=env,
                         capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def busy_process() -> subprocess.Popen:
    """Another process spinning on one core, as a papermill kernel's parent or a second job is."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    settings = [
        ("torch default", 0, {}),
        ("torch.set_num_threads(1)", 1, {}),
        ("torch.set_num_threads(2)", 2, {}),
        ("default + OMP_WAIT_POLICY=PASSIVE", 0, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ]
    rows = []
    for label, threads, env in settings:
        idle = run(threads, env)
        hog = busy_process()
        try:
            busy = run(threads, env)
        finally:
            hog.kill()
            hog.wait()
        rows.append((label, idle["threads"], idle["median_s"], busy["median_s"]))
        print(f"{label:<36} threads={idle['threads']}  idle {1000 * idle['median_s']:.1f} ms/step, "
              f"one core busy {1000 * busy['median_s']:.1f} ms/step", flush=True)
    base, base_busy = rows[1][2], rows[1][3]
    lines = [
        "# CPU thread settings: one training step of a 132k-parameter Llama (batch 32 × 24 tokens)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}. "
        "Each setting runs in a fresh process, once on an idle machine and once while another process "
        "spins on one core; median of 30 steps after 5 warm-up steps.",
        "",
        "| setting | torch threads | ms / step, idle | ms / step, one core busy | × time of 1 thread in the same condition (idle / busy) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {label} | {t} | {1000 * s:.1f} | {1000 * b:.1f} | {s / base:.2f} / {b / base_busy:.2f} |"
              for label, t, s, b in rows]
    lines += ["", "Regenerate: `python benchmarks/bench_cpu_threads.py`.", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
