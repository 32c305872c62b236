"""The GPU check of notebook 06's path, prepared for a lent GPU that has no network and no weights.

A model of Qwen2.5-0.5B-Instruct's shape (the architecture numbers below are those of its
published ``config.json``) with random weights, SmolLM2's tokenizer and chat template, and
notebook 06's instruction task and programmatic judges. Random weights write gibberish, so
every answer runs to the token limit: the timings are an upper bound on a trained model's.

1. one DNO iteration through ``run_dno`` in bf16 (sampling, judging, pairs, reference
   log-probs, training, evaluation): each stage's time and the peak GPU memory;
2. sampling: dnolab's sampler against a plain ``model.generate`` loop on the same prompts;
3. the training step: dnolab's ``DNOTrainer`` against TRL's ``DPOTrainer`` on the same pairs.

Written to ``benchmarks/results/gpu.md`` with the GPU named. On this project's CPU machines::

    python benchmarks/bench_gpu.py --tiny --out /tmp/gpu.md   # the same code, a 2-layer model, CPU
    bash benchmarks/gpu_check.sh download   # the wheels a CUDA PyTorch image lacks, and the tokenizer

and on the GPU machine, which has no network (carry ``.whl`` and ``build/gpu_check``)::

    bash benchmarks/gpu_check.sh   # installs the wheels, prints their versions, runs this script
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from bench_real_model import pairs_from, sampling_times, time_dnolab, time_trl

from dnolab.lm.config import SamplingConfig, load_config
from dnolab.lm.data import load_tokenizer
from dnolab.lm.ifeval import make_prompt_table
from dnolab.lm.local_models import resolve_model
from dnolab.lm.loop import run_dno
from dnolab.lm.sampling import sample_responses

ROOT = Path(__file__).resolve().parents[1]
PREPARED = ROOT / "build" / "gpu_check"
RESULTS = ROOT / "benchmarks" / "results" / "gpu.md"

QWEN25_05B = {  # Qwen2.5-0.5B-Instruct's config.json (494M parameters)
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
    "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
}
TINY = {**QWEN25_05B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 49152}


def tokenizer_folder() -> Path:
    """The prepared copy of SmolLM2's tokenizer, or the cached model folder ``make install`` wrote."""
    if (PREPARED / "tokenizer" / "tokenizer_config.json").exists():
        return PREPARED / "tokenizer"
    return Path(resolve_model("smollm2-135m-instruct"))


def prepare() -> Path:
    """Copy the tokenizer (a few MB, no weights) where the GPU machine's copy of the tree has it."""
    dest = PREPARED / "tokenizer"
    load_tokenizer(str(resolve_model("smollm2-135m-instruct"))).save_pretrained(dest)
    return dest


def random_model(dest: Path, shape: dict, dtype: torch.dtype) -> tuple[Path, int]:
    """A Qwen2 model of ``shape`` with random weights (seed 0) and the tokenizer, saved as a folder."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    tok = load_tokenizer(str(tokenizer_folder()))
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Qwen2Config(**shape, **ids), dtype=dtype)
    model.generation_config.update(**ids)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest, sum(p.numel() for p in model.parameters())


def one_iteration(model_dir: Path, work: Path, dtype: str, prompts: int, eval_prompts: int) -> dict:
    """One DNO iteration of notebook 06's config on the random model: stage times (s)."""
    config = load_config("smollm2_ifeval", {
        "name": "gpu_check", "output_dir": str(work), "iterations": 1, "prompts_per_iteration": prompts,
        "model.name_or_path": str(model_dir), "model.dtype": dtype,
        "eval.prompts": eval_prompts, "eval.validation_prompts": 8})
    start = time.perf_counter()
    summary = run_dno(config, show_progress=False)
    timings = dict(summary["per_iteration"][1]["timings"])
    timings["whole run (with π1's evaluation)"] = time.perf_counter() - start
    return timings


def sampling_rates(model, tok, prompts: list[str], k: int, new_tokens: int, batch: int):
    """Answers per second of dnolab's sampler and of a plain generate loop (same prompts, K and
    limit), and the sampler's answers."""
    cfg = SamplingConfig(temperature=0.8, max_new_tokens=new_tokens, batch_size=batch)
    sample_responses(model, tok, prompts[:batch], 1, cfg, seed=1, chat=True, show_progress=False)  # warm-up
    (ours,), ((plain, _),), texts = sampling_times(model, tok, prompts, k, new_tokens, batch, repeats=1)
    return len(prompts) * k / ours, len(prompts) * k / plain, [texts[i] for i in range(len(prompts))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", action="store_true", help="copy the tokenizer to build/gpu_check and stop")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model on the CPU: checks the script")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the Markdown report goes")
    args = parser.parse_args()
    if args.prepare:
        print(f"tokenizer copied to {prepare()}")
        return
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:  # `make bench` runs every benchmark; this one needs a GPU
        print("bench_gpu: no CUDA device, skipped (run it on a GPU machine, or pass --tiny to check it on a CPU)")
        return
    shape, dtype = (TINY, torch.float32) if args.tiny else (QWEN25_05B, torch.bfloat16)
    prompts_n, eval_n, k, new_tokens, batch = (16, 16, 2, 16, 16) if args.tiny else (96, 200, 4, 48, 128)
    device = "cuda" if cuda else "cpu"
    machine = torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    work = Path(tempfile.mkdtemp(prefix="dnolab-gpu-check-"))
    try:
        model_dir, n_params = random_model(work / "model", shape, dtype)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        stages = one_iteration(model_dir, work / "runs", "bfloat16" if cuda else "float32", prompts_n, eval_n)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        print(f"one iteration: {stages}, peak {peak:.1f} GiB", flush=True)

        from dnolab.lm.data import load_causal_lm

        model, tok = load_causal_lm(str(model_dir), device=device), load_tokenizer(str(model_dir))
        table = make_prompt_table(32, seed=7)
        prompts = [r["prompt"] for r in table]
        ours_rate, plain_rate, samples = sampling_rates(model, tok, prompts, k, new_tokens, min(batch, 32))
        del model
        print(f"sampling: dnolab {ours_rate:.1f}, plain {plain_rate:.1f} answers/s", flush=True)
        pairs = pairs_from(prompts, [r["gold"] for r in table], samples)
        trl_steps = statistics.median(time_trl(str(model_dir), pairs, str(work / "trl"), cuda=cuda))
        ours_steps = statistics.median(time_dnolab(str(model_dir), pairs, str(work / "ours"), cuda=cuda)[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [f"# Notebook 06's path on {machine}", "",
             f"torch {torch.__version__}, CUDA {torch.version.cuda}, {'bf16' if cuda else 'fp32'}; a model of "
             f"{'Qwen2.5-0.5B-Instruct' if not args.tiny else 'a 2-layer Qwen2'} shape with random weights "
             f"({n_params / 1e6:.0f}M parameters) and SmolLM2's tokenizer: random weights write gibberish that "
             "runs to the token limit, so these times bound a trained model's from above.", "",
             f"## One DNO iteration (`run_dno`, {prompts_n} prompts × K={k} + the teacher, {eval_n} evaluation "
             f"prompts, ≤ {new_tokens} new tokens)", "", "| stage | seconds |", "|---|---|",
             *(f"| {name.removesuffix('_s')} | {sec:.1f} |" for name, sec in stages.items()), "",
             f"Peak GPU memory during the iteration: {peak:.1f} GiB.", "",
             "## Sampling (32 prompts, answers per second)", "", "| sampler | answers / s |", "|---|---|",
             f"| plain `model.generate` loop | {plain_rate:.1f} |", f"| dnolab `sample_responses` | {ours_rate:.1f} |",
             "", f"**Ratio dnolab / plain: {ours_rate / plain_rate:.2f}**.", "",
             "## Training step (same pairs, batch 8, reference log-probs precomputed in both)", "",
             f"TRL DPOTrainer {trl_steps:.3f} s/step, dnolab DNOTrainer {ours_steps:.3f} s/step: "
             f"**ratio dnolab / TRL {ours_steps / trl_steps:.2f}**.", "",
             "Regenerate: `python benchmarks/bench_gpu.py` on a GPU machine (see its docstring).", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
