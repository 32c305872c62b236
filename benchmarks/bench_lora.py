"""LoRA against full fine-tuning: the DNO training step on SmolLM2-135M-Instruct, side by side.

Same pairs (a prompt's teacher answer ≻ another prompt's teacher answer, so both sides have
teacher-like lengths), batch 8, fp32, reference log-probs precomputed, alternating repeats in
one run. LoRA (``training.lora_rank``) trains rank-r adapters on every linear layer and keeps
the rest frozen: no weight gradients and no optimiser state for the frozen 135M parameters,
but the forward and the backward through the activations remain. Written to
benchmarks/results/lora.md.

    python benchmarks/bench_lora.py          # about 5 minutes on a 2-core laptop
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from bench_real_model import gold_pairs, time_dnolab

from dnolab.lm.local_models import resolve_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "lora.md"
RANKS, REPEATS = (0, 8, 32), 2


def main() -> None:
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    path = resolve_model("smollm2-135m-instruct")
    pairs = gold_pairs()
    work, times = Path(tempfile.mkdtemp(prefix="dnolab-bench-lora-")), {r: [] for r in RANKS}
    try:
        for repeat in range(REPEATS):
            for rank in RANKS:
                steps, _ = time_dnolab(path, pairs, str(work / f"r{rank}_{repeat}"), lora_rank=rank)
                times[rank].append(statistics.median(steps))
                print(f"repeat {repeat}, rank {rank}: {times[rank][-1]:.2f} s/step", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    full = statistics.median(times[0])
    lines = ["# LoRA against full fine-tuning: the DNO step on SmolLM2-135M-Instruct", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, {threads} torch threads, torch "
             f"{torch.__version__}, fp32; 96 pairs, batch 8, median step after 2 warm-up steps, {REPEATS} "
             "alternating repeats (other jobs may have shared the machine: compare the ratios).", "",
             "| training | s / step (median) | all repeats | time vs full |", "|---|---|---|---|"]
    for rank in RANKS:
        name = "full fine-tuning" if rank == 0 else f"LoRA, rank {rank}, every linear layer"
        med = statistics.median(times[rank])
        lines.append(f"| {name} | {med:.2f} | " + ", ".join(f"{t:.2f}" for t in times[rank])
                     + f" | {med / full:.2f} |")
    lines += ["", "Regenerate: `python benchmarks/bench_lora.py`.", ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
