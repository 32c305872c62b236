"""Sampling at notebook 06's settings (SmolLM2-135M-Instruct, temperature 0.7, top-p 0.95,
≤ 48 new tokens), side by side in one run, alternating repeats, on the two shapes of call a
DNO iteration makes: its training samples (32 prompts × K = 4) and its evaluation answers
(128 prompts × 1):

1. a plain ``model.generate(num_return_sequences=K, temperature, top_p)``: transformers' own
   warpers, which sort all 49,152 logits of every row at every step;
2. dnolab's sampler with its nucleus filter (``top_p_filter``: the nucleus looked for among the
   1,024 most likely tokens) but every row's prompt encoded by ``generate``, K times;
3. dnolab's sampler as shipped: the filter, the tokens every prompt starts with (the chat
   template's system turn) encoded once for the batch and each prompt once for its K samples.

It also counts how often the 1,024 candidates held the nucleus (otherwise the filter sorts the
whole vocabulary), checks that 2 and 3 draw the same samples, and times the filter alone
against transformers' ``TopPLogitsWarper`` on the logits of real decoding steps.

    python benchmarks/bench_sampling.py      # about 12 minutes on a 2-core laptop CPU
"""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from bench_cpu_bf16 import write_report  # benchmarks/ is on sys.path when it runs
from bench_real_model import _timed, plain_generate
from timing import cpu_name
from transformers.generation.logits_process import TopPLogitsWarper

from dnolab.lm import sampling
from dnolab.lm.config import SamplingConfig
from dnolab.lm.data import load_causal_lm, load_tokenizer
from dnolab.lm.ifeval import make_prompt_table
from dnolab.lm.local_models import resolve_model
from dnolab.utils import threads_for_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sampling.md"
N_PROMPTS, EVAL_PROMPTS, K, NEW_TOKENS, TEMPERATURE, TOP_P, REPEATS = 32, 128, 4, 48, 0.7, 0.95, 2


class NucleusCounter:
    """Wraps ``top_p_filter``: counts the decoding steps whose nucleus lay within the candidates
    in every row, and keeps a few steps' logits for timing the filter alone."""

    def __init__(self):
        self.steps, self.within, self.kept = 0, 0, []
        self.inner = sampling.top_p_filter

    def __call__(self, logits, top_p, candidates=sampling.NUCLEUS_CANDIDATES):
        probs = logits.double().softmax(-1)
        self.steps += 1
        self.within += bool((probs.topk(candidates, -1).values.sum(-1) >= top_p).all())
        if len(self.kept) < 8:
            self.kept.append(logits.clone())
        return self.inner(logits, top_p, candidates)


def dnolab_sample(model, tok, prompts: list[str], k: int, seed: int, share_prompts: bool):
    cfg = SamplingConfig(temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=NEW_TOKENS, batch_size=len(prompts))
    shared = sampling._prompt_cache
    if not share_prompts:
        sampling._prompt_cache = lambda *args: {}  # generate encodes every row's prompt itself
    try:
        return sampling.sample_responses(model, tok, prompts, k, cfg, seed=seed, chat=True, show_progress=False)
    finally:
        sampling._prompt_cache = shared


def main() -> None:
    path = resolve_model("smollm2-135m-instruct")
    model, tok = load_causal_lm(path), load_tokenizer(path)
    threads = threads_for_model(model)
    table = [row["prompt"] for row in make_prompt_table(EVAL_PROMPTS, seed=7)]
    shapes = {"training samples": (table[:N_PROMPTS], K), "evaluation answers": (table, 1)}

    counter = NucleusCounter()
    sampling.top_p_filter = counter
    try:
        same = all(dnolab_sample(model, tok, p, k, 0, True) == dnolab_sample(model, tok, p, k, 0, False)
                   for p, k in shapes.values())
    finally:
        sampling.top_p_filter = counter.inner

    runs = {(shape, name): [] for shape in shapes for name in ("plain", "filter", "shipped")}
    for r in range(REPEATS):  # alternating, so that other load on the machine falls on all of them
        for shape, (prompts, k) in shapes.items():
            runs[shape, "plain"].append(
                plain_generate(model, tok, prompts, k, NEW_TOKENS, len(prompts), TEMPERATURE, TOP_P, r)[0])
            runs[shape, "filter"].append(_timed(lambda r=r, p=prompts, k=k: dnolab_sample(model, tok, p, k, r, False)))
            runs[shape, "shipped"].append(_timed(lambda r=r, p=prompts, k=k: dnolab_sample(model, tok, p, k, r, True)))
    median = {key: statistics.median(times) for key, times in runs.items()}

    warper = TopPLogitsWarper(TOP_P)
    scaled = [logits / TEMPERATURE for logits in counter.kept]
    theirs = statistics.median(_timed(lambda x=x: warper(None, x)) for x in scaled)
    ours = statistics.median(_timed(lambda x=x: sampling.top_p_filter(x, TOP_P)) for x in scaled)
    rows = scaled[0].shape[0]

    lines = [
        "# Sampling: nucleus filter and each prompt token encoded once",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs ({cpu_name()}), torch {torch.__version__}, "
        f"{threads} torch threads, fp32. Constraint prompts in one `generate` call, temperature {TEMPERATURE}, "
        f"top-p {TOP_P}, ≤ {NEW_TOKENS} new tokens (notebook 06's settings), {REPEATS} alternating repeats.",
        "",
        "| call | sampler | s per call (median) | answers / s | all repeats |",
        "|---|---|---|---|---|",
    ]
    names = {"plain": "plain `generate` (transformers' temperature and top-p warpers)",
             "filter": "dnolab, nucleus filter, every prompt encoded by `generate`",
             "shipped": "dnolab as shipped: filter + shared start once + each prompt once"}
    for shape, (prompts, k) in shapes.items():
        for name, label in names.items():
            lines.append(f"| {len(prompts)} prompts × {k} ({shape}) | {label} | {median[shape, name]:.1f} | "
                         f"{len(prompts) * k / median[shape, name]:.2f} | "
                         f"{', '.join(f'{t:.1f}' for t in runs[shape, name])} |")
    lines.append("")
    for shape in shapes:
        lines += [f"**{shape.capitalize()}: shipped / plain {median[shape, 'plain'] / median[shape, 'shipped']:.2f}× "
                  f"the throughput** (the filter alone: {median[shape, 'plain'] / median[shape, 'filter']:.2f}×; "
                  f"the prompt tokens encoded once on top of it: "
                  f"{median[shape, 'filter'] / median[shape, 'shipped']:.2f}×).", ""]
    lines += [
        f"- The nucleus lay within the {sampling.NUCLEUS_CANDIDATES:,} most likely tokens in every row at "
        f"{counter.within} of {counter.steps} decoding steps (the rest sorted the whole vocabulary).",
        f"- The filter alone on {rows} rows of real logits: {ours * 1e3:.0f} ms a step; transformers' "
        f"`TopPLogitsWarper`: {theirs * 1e3:.0f} ms.",
        f"- Encoding the prompt tokens once draws the same samples as letting `generate` encode every row: "
        f"**{same}** (the same seed, both calls; tests/test_lm_data_sampling.py checks the same against a "
        "plain `generate` on the toy model).",
        "",
        "Regenerate: `python benchmarks/bench_sampling.py`.",
        "",
    ]
    write_report(RESULTS, lines)


if __name__ == "__main__":
    main()
