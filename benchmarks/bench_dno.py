"""Speed of the DNO engine, side by side in one run, written to benchmarks/results/dno.md.

1. Training step: dnolab's DNOTrainer against TRL's DPOTrainer with precomputed reference
   log-probs, on the same toy policy, the same pairs and the same batch size (alternating
   repeats; median step time over the steps after warm-up).
2. Sampling throughput (responses per second) and judge throughput (judgments per second).
3. One toy DNO iteration broken down by stage (from a run of configs/toy.yaml).

    python benchmarks/bench_dno.py            # about 4 minutes on a 2-core laptop
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from datasets import Dataset
from timing import StepTimer  # benchmarks/ is on sys.path when a benchmark runs

from dnolab.lm.config import load_config
from dnolab.lm.data import load_causal_lm, load_tokenizer
from dnolab.lm.loop import run_dno
from dnolab.lm.sampling import SamplingConfig, sample_responses
from dnolab.lm.toy import ToyJudge, ToyModelConfig, ToyTask, build_model, build_tokenizer
from dnolab.lm.trainer import (
    TrainingConfig,
    add_reference_logps,
    tokenize_pairs,
    train_on_pairs,
)
from dnolab.utils import set_cpu_threads

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dno.md"
BATCH, STEPS, WARMUP, REPEATS = 32, 120, 10, 3


def toy_pairs(n: int, seed: int = 0) -> Dataset:
    task, rng = ToyTask(), np.random.default_rng(seed)
    prompts = task.prompts(n, rng)
    return Dataset.from_dict({"prompt": prompts, "chosen": [" " + task.teacher(p) for p in prompts],
                              "rejected": [" " + task.demonstration(p, rng) for p in prompts]})


def time_trl(policy_dir: str, pairs: Dataset, out: str) -> list[float]:
    from trl import DPOConfig, DPOTrainer

    model, tok = load_causal_lm(policy_dir), load_tokenizer(policy_dir)
    args = DPOConfig(output_dir=out, beta=1.0, loss_type=["sigmoid"], precompute_ref_log_probs=True,
                     per_device_train_batch_size=BATCH, max_steps=STEPS, learning_rate=3e-4,
                     lr_scheduler_type="constant", bf16=False, use_cpu=True, report_to="none",
                     activation_checkpointing=False, logging_steps=1, save_strategy="no", max_length=64,
                     disable_tqdm=True, seed=0, dataloader_num_workers=0)
    timer = StepTimer()
    trainer = DPOTrainer(model=model, args=args, train_dataset=pairs, processing_class=tok, callbacks=[timer])
    trainer.train()
    return timer.times[WARMUP:]


def time_dnolab(policy_dir: str, pairs: Dataset, out: str) -> list[float]:
    import transformers

    model, tok = load_causal_lm(policy_dir), load_tokenizer(policy_dir)
    data = add_reference_logps(model, tokenize_pairs(pairs, tok, chat=False), tok)
    timer = StepTimer()
    original = transformers.Trainer.__init__

    def with_timer(self, *args, **kwargs):  # attach the same timer the TRL run uses
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), timer]
        original(self, *args, **kwargs)

    transformers.Trainer.__init__ = with_timer
    try:
        train_on_pairs(model, tok, data, TrainingConfig(beta=1.0, batch_size=BATCH, learning_rate=3e-4,
                                                        epochs=STEPS * BATCH / len(data)), out, seed=0)
    finally:
        transformers.Trainer.__init__ = original
    return timer.times[WARMUP:]


def main() -> None:
    set_cpu_threads(1)
    work = Path(tempfile.mkdtemp(prefix="dnolab-bench-"))
    lines = ["# DNO engine benchmarks", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
             f"one torch thread, Python {platform.python_version()}.", ""]
    try:
        tok = build_tokenizer()
        policy_dir = str(work / "policy")
        build_model(ToyModelConfig(), tok, seed=0).save_pretrained(policy_dir)
        tok.save_pretrained(policy_dir)
        pairs = toy_pairs(BATCH * STEPS)

        # 1. training step, alternating runs
        ours, trl = [], []
        for r in range(REPEATS):
            trl.append(float(np.median(time_trl(policy_dir, pairs, str(work / f"trl{r}")))))
            ours.append(float(np.median(time_dnolab(policy_dir, pairs, str(work / f"ours{r}")))))
            print(f"repeat {r}: TRL {1000 * trl[-1]:.1f} ms/step, dnolab {1000 * ours[-1]:.1f} ms/step", flush=True)
        ratio = float(np.median(ours) / np.median(trl))
        lines += ["## Training step: dnolab `DNOTrainer` vs TRL `DPOTrainer`", "",
                  f"Same toy policy (132k-parameter Llama), same {len(pairs)} pairs, batch {BATCH}, {STEPS} steps, "
                  "reference log-probs precomputed in both, fp32, no activation checkpointing "
                  f"(TRL's CPU-safe settings). Median step time after {WARMUP} warm-up steps, "
                  f"{REPEATS} alternating repeats.", "",
                  "| trainer | ms / step (median of repeats) | all repeats |", "|---|---|---|",
                  f"| TRL DPOTrainer (sigmoid, precompute_ref_log_probs) | {1000 * np.median(trl):.1f} | "
                  + ", ".join(f"{1000 * x:.1f}" for x in trl) + " |",
                  f"| dnolab DNOTrainer | {1000 * np.median(ours):.1f} | "
                  + ", ".join(f"{1000 * x:.1f}" for x in ours) + " |", "",
                  f"**Ratio dnolab / TRL: {ratio:.2f}** (the losses agree to 1e-5: tests/test_lm_losses.py).", ""]

        # 2. sampling and judging throughput
        model = load_causal_lm(policy_dir)
        prompts = ToyTask().prompts(1000, np.random.default_rng(1))
        cfg = SamplingConfig(batch_size=250, max_new_tokens=10)
        start = time.perf_counter()
        samples = sample_responses(model, tok, prompts, 4, cfg, seed=0, show_progress=False)
        sampling = 4000 / (time.perf_counter() - start)
        judge, flat = ToyJudge(), [(prompts[i], r) for i in samples for r in samples[i]]
        start = time.perf_counter()
        for _ in range(5):
            judge.preference([p for p, _ in flat], [r for _, r in flat], [ToyTask().teacher(p) for p, _ in flat])
        judging = 5 * len(flat) / (time.perf_counter() - start)
        lines += ["## Throughput", "", "| stage | rate |", "|---|---|",
                  f"| sampling, toy policy, 1000 prompts × K=4, ≤10 new tokens, batch 250 prompts | "
                  f"{sampling:,.0f} responses / s |",
                  f"| toy judge, vectorised | {judging:,.0f} judgments / s |", ""]

        # 3. one toy iteration by stage
        config = load_config(ROOT / "configs" / "toy.yaml", {"output_dir": str(work / "runs"), "iterations": 2})
        start = time.perf_counter()
        summary = run_dno(config, show_progress=False)
        total = time.perf_counter() - start
        timings = summary["per_iteration"][-1]["timings"]
        lines += ["## One toy DNO iteration, by stage (configs/toy.yaml, iteration 2)", "",
                  "1000 prompts × (K=4 samples + gold), ~4-5k pairs, 1 epoch at batch 32, 1000 evaluation prompts.",
                  "`training` includes tokenising the pairs and the reference log-probs.", "",
                  "| stage | seconds |", "|---|---|"]
        lines += [f"| {k.removesuffix('_s')} | {v:.1f} |" for k, v in sorted(timings.items())]
        lines += [f"| whole run: SFT + 2 iterations + evaluations | {total:.1f} |", "",
                  "Regenerate: `python benchmarks/bench_dno.py`.", ""]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    print(json.dumps({"ratio_dnolab_over_trl": ratio}), file=sys.stderr)


if __name__ == "__main__":
    main()
