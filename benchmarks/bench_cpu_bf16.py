"""bfloat16 against fp32 on this CPU, for SmolLM2-135M-Instruct, side by side in one run.

A CPU with AMX tiles (Intel Sapphire Rapids and later) multiplies bfloat16 matrices several
times faster than fp32 ones; ``training.bf16: true`` trains under bf16 autocast there (the
reference log-probs are scored under the same autocast, so the first step still starts at
π_t). This measures what that buys at each stage of an iteration, and what it costs in
precision, written to benchmarks/results/cpu_bf16.md:

1. the 2048² matmul rate in fp32 and bf16;
2. the training step (dnolab's trainer, ``training.bf16`` false / true, alternating repeats);
3. the reference log-probs (forward only), how far bf16 moves them, and how far the
   batching moves them in bf16 and in fp32;
4. sampling (``model.generate`` with and without bf16 autocast).

    python benchmarks/bench_cpu_bf16.py          # about 7 minutes on a 2-core laptop

On a CPU with neither AMX nor AVX512-BF16 torch emulates bf16 matrix products; there it
measures only the matmul rate and the reference log-probs (about 12 minutes; the training
steps would take hours) and writes benchmarks/results/cpu_bf16_emulated.md instead.
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
from bench_real_model import (
    N_PROMPTS,
    NEW_TOKENS,
    REPEATS,
    WARMUP,
    matmul_rate,
    pairs_from,
    plain_generate,
)
from timing import StepTimer, cpu_name  # benchmarks/ is on sys.path when a benchmark runs

from dnolab.lm.data import load_causal_lm, load_tokenizer
from dnolab.lm.ifeval import make_prompt_table
from dnolab.lm.local_models import resolve_model
from dnolab.lm.trainer import (
    TrainingConfig,
    add_reference_logps,
    cpu_has_bf16_matmul,
    tokenize_pairs,
    train_on_pairs,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cpu_bf16.md"
EMULATED = ROOT / "benchmarks" / "results" / "cpu_bf16_emulated.md"
EMULATED_BATCH = 8
MODEL = "smollm2-135m-instruct"
BATCH, STEPS = 8, 6


def step_times(path: str, pairs, out: str, bf16: bool) -> list[float]:
    """dnolab's training step after the warm-up steps, in fp32 or under bf16 autocast."""
    model, tok = load_causal_lm(path), load_tokenizer(path, pad_with_eos=True)
    data = add_reference_logps(model, tokenize_pairs(pairs, tok, chat=True), tok, batch_size=16, bf16=bf16)
    timer = StepTimer()
    config = TrainingConfig(beta=0.5, batch_size=BATCH, learning_rate=1e-5, epochs=STEPS * BATCH / len(data),
                            bf16=bf16)
    train_on_pairs(model, tok, data, config, out, seed=0, callbacks=[timer])
    return timer.times[WARMUP:]


def write_report(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print("\n".join(lines))


def emulated(threads: int) -> None:
    """What bf16 costs on a CPU that emulates it: the matmul rate and the reference log-probs,
    fp32 and bf16 alternating (a training step would take minutes)."""
    path = resolve_model(MODEL)
    model, tok = load_causal_lm(path), load_tokenizer(path, pad_with_eos=True)
    rate = {dt: matmul_rate(threads, n=512, repeats=3, dtype=dt) for dt in (torch.float32, torch.bfloat16)}
    table = make_prompt_table(EMULATED_BATCH, seed=7)
    prompts, gold = [r["prompt"] for r in table], [r["gold"] for r in table]
    data = tokenize_pairs(pairs_from(prompts, gold, [[gold[i - 1]] for i in range(len(gold))]), tok, chat=True)
    ref_s = {False: [], True: []}
    for _ in range(REPEATS):
        for bf16 in (False, True):
            start = time.perf_counter()
            add_reference_logps(model, data, tok, batch_size=EMULATED_BATCH, bf16=bf16)
            ref_s[bf16].append(time.perf_counter() - start)
            print(f"bf16 {bf16}: {ref_s[bf16][-1]:.2f} s", flush=True)
    fp32, bf16 = statistics.median(ref_s[False]), statistics.median(ref_s[True])
    lines = ["# bfloat16 against fp32 on a CPU that emulates bf16: SmolLM2-135M-Instruct", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {threads} torch "
             "threads; neither AMX nor AVX512-BF16, so torch emulates bf16 matrix products. Medians of "
             f"{REPEATS} alternating repeats.", "",
             f"Matmul rate (512², best of 3): {rate[torch.float32]:.1f} GFLOP/s in fp32, "
             f"{rate[torch.bfloat16]:.1f} GFLOP/s in bf16 ({rate[torch.float32] / rate[torch.bfloat16]:.0f}× slower).",
             "",
             f"Reference log-probs of {len(data)} pairs (batches of {EMULATED_BATCH}): {fp32:.2f} s in fp32, "
             f"{bf16:.2f} s under bf16 autocast, **{bf16 / fp32:.1f}× slower**.", "",
             "On such a CPU keep `training.bf16: auto` and `sampling.bf16: false` (the defaults); a run that "
             "asks for bf16 there warns. What bf16 buys on a CPU with AMX: `cpu_bf16.md`.", "",
             "Regenerate: `python benchmarks/bench_cpu_bf16.py` (on such a CPU).", ""]
    write_report(EMULATED, lines)


def main() -> None:
    threads = os.cpu_count() or 1
    if not cpu_has_bf16_matmul():
        return emulated(threads)
    torch.set_num_threads(threads)
    path = resolve_model(MODEL)
    model, tok = load_causal_lm(path), load_tokenizer(path, pad_with_eos=True)
    rate = {dt: matmul_rate(threads, dtype=dt) for dt in (torch.float32, torch.bfloat16)}
    table = make_prompt_table(N_PROMPTS, seed=7)
    prompts, gold = [r["prompt"] for r in table], [r["gold"] for r in table]
    work = Path(tempfile.mkdtemp(prefix="dnolab-bench-bf16-"))
    try:
        # sampling: the same generate calls, with and without autocast, alternating
        sample = {False: [], True: []}
        for _ in range(REPEATS):
            for bf16 in (False, True):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    sample[bf16].append(plain_generate(model, tok, prompts, k=1)[0])
        pairs = pairs_from(prompts, gold, [[gold[i - 1]] for i in range(len(gold))])  # another prompt's answer
        # reference log-probs: time and how far bf16 moves them
        data = tokenize_pairs(pairs, tok, chat=True)
        ref, ref_s = {}, {False: [], True: []}
        for _ in range(REPEATS):
            for bf16 in (False, True):
                start = time.perf_counter()
                ref[bf16] = add_reference_logps(model, data, tok, batch_size=16, bf16=bf16)["ref_chosen_logps"]
                ref_s[bf16].append(time.perf_counter() - start)
        moved = [abs(a - b) for a, b in zip(ref[False], ref[True], strict=True)]
        # the same answers scored in batches of 8: how much the padding of a batch moves them
        rebatched = {bf16: add_reference_logps(model, data, tok, batch_size=8, bf16=bf16)["ref_chosen_logps"]
                     for bf16 in (False, True)}
        batching = {bf16: [abs(a - b) for a, b in zip(ref[bf16], rebatched[bf16], strict=True)]
                    for bf16 in (False, True)}
        tokens = statistics.mean(len(c) for c in data["chosen_ids"])
        # training steps, alternating
        train = {False: [], True: []}
        for r in range(REPEATS):
            for bf16 in (False, True):
                train[bf16].append(statistics.median(step_times(path, pairs, str(work / f"{bf16}{r}"), bf16)))
                print(f"repeat {r}, bf16 {bf16}: {train[bf16][-1]:.2f} s/step", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def row(name, times):
        fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
        return f"| {name} | {fp32:.2f} | {bf16:.2f} | **{fp32 / bf16:.2f}×** |"

    lines = ["# bfloat16 against fp32 on this CPU: SmolLM2-135M-Instruct", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
             f"{threads} torch threads; AMX tiles: {'yes' if torch.cpu._is_amx_tile_supported() else 'no'}. "
             f"Medians of {REPEATS} alternating repeats: other load on the machine falls on both columns.", "",
             f"Matmul rate (2048², best of 10): {rate[torch.float32]:.0f} GFLOP/s in fp32, "
             f"{rate[torch.bfloat16]:.0f} GFLOP/s in bf16 ({rate[torch.bfloat16] / rate[torch.float32]:.1f}×).", "",
             "| stage | fp32 (s) | bf16 (s) | speed-up |", "|---|---|---|---|",
             row(f"training step ({BATCH} pairs, median after {WARMUP} warm-up steps)", train),
             row(f"reference log-probs ({len(data)} pairs, batches of 16)", ref_s),
             row(f"sampling ({N_PROMPTS} prompts, ≤ {NEW_TOKENS} new tokens, `generate` under autocast)", sample), "",
             f"Precision: bf16 moves a chosen answer's reference log-prob (about {tokens:.0f} tokens) by "
             f"{statistics.median(moved):.2f} nats (median; largest {max(moved):.2f}). That is why the reference "
             "must be scored under the same autocast as the step: otherwise β·Δ starts away from 0. "
             f"Scored in batches of 8 instead of 16, the same answers' log-probs move by "
             f"{statistics.median(batching[True]):.2f} nats in bf16 (median; largest {max(batching[True]):.2f}) "
             f"against at most {max(batching[False]):.0e} in fp32: bf16 rounding depends on how a batch is "
             "padded, so under bf16 a step starts at π_t only up to that (the first loss is near log 2, "
             "not at it).", "",
             "`training.bf16: auto` (the default) keeps fp32 on every CPU; `training.bf16: true` trains and "
             "scores the reference in bf16, "
             "`sampling.bf16: true` samples (and evaluates) under autocast. On a CPU without AMX or "
             "AVX512-BF16 bf16 is emulated and many times slower: `cpu_bf16_emulated.md`.", "",
             "Regenerate: `python benchmarks/bench_cpu_bf16.py`.", ""]
    write_report(RESULTS, lines)


if __name__ == "__main__":
    main()
