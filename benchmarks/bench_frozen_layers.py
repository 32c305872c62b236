"""Frozen lower layers: the DNO step on SmolLM2-135M-Instruct with every layer trained, with the
embeddings (tied head) and lowest layers frozen, and with those layers also run once per pair
instead of once per step (``training.frozen_layers``), side by side in one run.

Same 96 pairs as benchmarks/bench_lora.py (a prompt's teacher answer ≻ another prompt's), batch
8, fp32, reference log-probs precomputed, median step after 2 warm-up steps, alternating
repeats. What an iteration of notebook 06 spends training (96 pairs, batch 8) follows for one
pass (12 steps) and four (48 steps), counting the cached path's one pass over the lower layers.
Written to benchmarks/results/frozen_layers.md.

    python benchmarks/bench_frozen_layers.py          # about 6 minutes on a 2-core laptop
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from bench_real_model import gold_pairs
from timing import StepTimer, cpu_name

from dnolab.lm.config import TrainingConfig
from dnolab.lm.data import load_causal_lm, load_tokenizer
from dnolab.lm.local_models import resolve_model
from dnolab.lm.trainer import add_reference_logps, tokenize_pairs, train_on_pairs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "frozen_layers.md"
FROZEN, BATCH, STEPS, WARMUP, REPEATS = 22, 8, 8, 2, 2
WAYS = {"every layer trained": "full", f"lowest {FROZEN} layers frozen, run every step": "by_hand",
        f"lowest {FROZEN} layers frozen, run once per pair (`training.frozen_layers: {FROZEN}`)": "cached"}


def time_way(path: str, pairs, way: str, out: str) -> tuple[list[float], float]:
    """Step times after the warm-up, and the seconds train_on_pairs spent outside its steps
    (the cached path's pass over the lower layers; the Trainer's set-up for every way)."""
    model, tok = load_causal_lm(path), load_tokenizer(path, pad_with_eos=True)
    data = add_reference_logps(model, tokenize_pairs(pairs, tok, chat=True), tok, batch_size=16)
    if way == "by_hand":  # the same parameters frozen, the whole model run at every step
        model.get_input_embeddings().requires_grad_(False)
        for layer in model.model.layers[:FROZEN]:
            layer.requires_grad_(False)
    config = TrainingConfig(beta=0.5, batch_size=BATCH, learning_rate=1e-5, epochs=STEPS * BATCH / len(data),
                            reference_batch_size=16,  # notebook 06: the cache is built in batches of 16
                            frozen_layers=FROZEN if way == "cached" else 0)
    timer, start = StepTimer(), time.perf_counter()
    train_on_pairs(model, tok, data, config, out, seed=0, callbacks=[timer])
    return timer.times[WARMUP:], time.perf_counter() - start - sum(timer.times)


def main() -> None:
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    path = resolve_model("smollm2-135m-instruct")
    pairs = gold_pairs()
    work = Path(tempfile.mkdtemp(prefix="dnolab-bench-frozen-"))
    steps, outside = {w: [] for w in WAYS.values()}, {w: [] for w in WAYS.values()}
    try:
        for repeat in range(REPEATS):
            for way in WAYS.values():
                times, rest = time_way(path, pairs, way, str(work / f"{way}{repeat}"))
                steps[way].append(statistics.median(times))
                outside[way].append(rest)
                print(f"repeat {repeat}, {way}: {steps[way][-1]:.2f} s/step, {rest:.1f} s outside the steps", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    step = {w: statistics.median(t) for w, t in steps.items()}
    rest = {w: statistics.median(t) for w, t in outside.items()}
    n_pairs = len(pairs)
    per_pass = n_pairs // BATCH
    lines = ["# Frozen lower layers: the DNO step on SmolLM2-135M-Instruct", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {threads} torch threads, torch "
             f"{torch.__version__}, fp32; {n_pairs} pairs, batch {BATCH}, median step after {WARMUP} warm-up "
             f"steps, {REPEATS} alternating repeats (other jobs may have shared the machine: compare the ratios). "
             f"Frozen: the input embeddings (with them the tied output head) and the lowest {FROZEN} of 30 "
             "decoder layers.", "",
             f"| training | s / step (median) | all repeats | step vs every layer | outside the steps (s) "
             f"| {per_pass} steps | {4 * per_pass} steps |", "|---|---|---|---|---|---|---|"]
    for label, way in WAYS.items():
        lines.append(f"| {label} | {step[way]:.2f} | " + ", ".join(f"{t:.2f}" for t in steps[way])
                     + f" | {step[way] / step['full']:.2f} | {rest[way]:.1f} | {per_pass * step[way] + rest[way]:.0f} s "
                     f"| {4 * per_pass * step[way] + rest[way]:.0f} s |")
    lines += ["", "The steps columns: what an iteration of notebook 06 (96 pairs) spends training in one pass "
              "and in four, step time × steps + the time outside the steps. Outside the steps the cached way "
              "runs the lower layers over every pair once (the other ways spend it on the Trainer's set-up, "
              "which all share).", "", "Regenerate: `python benchmarks/bench_frozen_layers.py`.", ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
