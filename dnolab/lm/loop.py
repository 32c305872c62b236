"""DNO-Prct (Algorithm 2 of Rosset et al. 2024), the outer loop, resumable.

For t = 1..T, on a fresh partition of prompts:

    4. sample K responses per prompt from π_t (plus the teacher's gold answer),
    5. judge every pair of candidates and rank them by win rate,
    6. keep the large-margin pairs,
    7. train π_{t+1} from π_t by DPO whose reference is π_t (paper eq. 13),

then evaluate π_{t+1} on held-out prompts; return the best iterate on validation prompts.
:meth:`DNORun.iterate` is that list, line by line. Where the files go is
:mod:`dnolab.lm.rundir`; how several processes share the work, :mod:`dnolab.lm.distributed`;
the evaluation, :mod:`dnolab.lm.evaluation`. Each stage is computed once, saved atomically,
and reused by a rerun of the same command, which resumes where a previous one stopped.
"""

from __future__ import annotations

import shutil
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from ..utils import set_cpu_threads, threads_for_model
from .config import DNOConfig, from_dict
from .data import (
    check_prompt_lengths,
    completion_text,
    load_causal_lm,
    load_tokenizer,
    split_prompts,
)
from .distributed import exists_everywhere, process_state
from .errors import ConfigError, CorruptRunError, DNOInputError, InvalidJudgmentsError
from .evaluation import best_iterate, evaluate_iterate, headline, table2_statistics
from .judges import describe_judge, invalid_share, judge_sharded
from .pairs import EMPTY_PAIR, count_types, pair_rows, with_replay
from .reward_model import reward_model_ranker
from .rundir import JUDGMENTS, PAIRS, SAMPLES, RunDir, load_rows, save_pretrained_atomic, save_rows
from .sampling import is_degenerate, sample_sharded
from .trainer import cpu_has_bf16_matmul, reference_logps, tokenize_pairs, train_on_pairs, uses_bf16
from .world import make_world

__all__ = ["ConfigError", "CorruptRunError", "DNORun", "run_dno"]


class DNORun:
    """One DNO run: ``DNORun(config).run()``; rerunning resumes where it stopped."""

    def __init__(self, config: DNOConfig, show_progress: bool = True, judge=None, heldout_judges=None):
        """``judge`` replaces the configured training judge and ``heldout_judges`` (label → judge)
        the configured held-out ones: any object with ``preference`` or ``scores``
        (see dnolab.lm.judges), e.g. your own preference model."""
        self.config, self.show_progress = config, show_progress
        self.state = process_state()
        if self.state.device.type == "cpu":
            set_cpu_threads()  # the default thread count makes small models many times slower
            bf16 = [name for name, on in (("training.bf16", uses_bf16(config.training, cuda=False)),
                                          ("sampling.bf16", config.sampling.bf16)) if on]
            if bf16 and not cpu_has_bf16_matmul():
                warnings.warn(f"{' and '.join(bf16)} asked for bfloat16, but this CPU has neither AMX nor "
                              "AVX512-BF16, so torch emulates bf16 matrix products: many times slower than "
                              "fp32 (benchmarks/results/cpu_bf16_emulated.md). Set training.bf16: auto and "
                              "sampling.bf16: false on this machine.", stacklevel=2)
        self.is_main = self.state.is_main_process
        self.rundir = RunDir(config.run_dir())
        self.rundir.prepare(config.to_dict(), self.is_main, defaults=from_dict({}).to_dict())
        self.state.wait_for_everyone()
        self.world = make_world(config, device=self.state.device, judge=judge)
        heldout = self.world.heldout_judges(self.state.device) if heldout_judges is None else dict(heldout_judges)
        self.judges = {"train": self.world.judge, **heldout}
        self.rundir.check_judges({label: describe_judge(j) for label, j in self.judges.items()}, self.is_main)
        self.state.wait_for_everyone()
        if config.use_gold and self.world.prompt_pool(1, config.seed).gold is None:
            raise DNOInputError("use_gold: true but the prompt set has no gold answers")
        # evaluation and validation first: their prompts never depend on the number of iterations
        sizes = {"eval": config.eval.prompts, "validation": config.eval.validation_prompts}
        sizes |= {f"iter_{t:02d}": config.prompts_per_iteration for t in range(1, config.iterations + 1)}
        self.parts = split_prompts(self.world.prompt_pool(sum(sizes.values()), config.seed), sizes)

    # -- Algorithm 2 ----------------------------------------------------------------------------
    def iterate(self, t: int):
        """Iteration t: π_t → π_{t+1} (Algorithm 2, lines 3–7), then its evaluation."""
        self.timings, self.reused = {}, []
        if self.is_main:
            self.rundir.iteration(t).mkdir(parents=True, exist_ok=True)
        part = self.parts[f"iter_{t:02d}"]  # line 3: a fresh partition of prompts, with gold answers
        policy, tokenizer = self.load_policy(t - 1)  # π_t
        samples = self.stage(t, SAMPLES, "sampling",  # line 4: K samples per prompt from π_t
                             lambda: self.sample(policy, tokenizer, part, t))
        judged = self.stage(t, JUDGMENTS, "judging",  # line 5: rank the K + 1 candidates by win rate
                            lambda: self.judge(samples, t))
        pairs = self.stage(t, PAIRS, "pairs",  # line 6: keep the large-margin pairs
                           lambda: self.make_pairs(judged, t))
        pairs = pairs.filter(lambda r: r["iteration"] >= 0)
        if not exists_everywhere(self.rundir.policy(t) / "config.json", self.state):
            self.train(t, policy, tokenizer, pairs)  # line 7: DPO step with reference π_t → π_{t+1}
        else:
            self.reused.append("training")
        policy = None  # free π_t before π_{t+1} is loaded for evaluation
        table2 = table2_statistics([np.array(m) for m in judged["win_matrix"]],
                                   [np.array(s, dtype=float) for s in judged["scores"]], self.config.use_gold,
                                   [r["responses"] for r in samples], count_types(pairs.to_list()))
        self.evaluate(t, table2)

    def stage(self, t: int, name: str, timing: str, compute):
        """Done? If not, compute (every process takes part), save on the main process
        atomically, wait for all; then reload from disk, so a fresh and a resumed run continue
        from the same bytes."""
        start, path = time.perf_counter(), self.rundir.stage(t, name)
        if exists_everywhere(path, self.state):
            self.reused.append(timing)
        else:
            save_rows(compute(), path, self.is_main)
            self.state.wait_for_everyone()
        rows = load_rows(path)
        self.timings[f"{timing}_s"] = time.perf_counter() - start
        return rows

    # -- the steps --------------------------------------------------------------------------------
    def sample(self, policy, tokenizer, part, t: int) -> list[dict]:
        """K samples per prompt from π_t (or π₁, or the mixture π_t^(1−α)·π₁^α), and the gold answer."""
        cfg, sampler, mix_with = self.config, policy, None
        if cfg.sample_from == "initial":  # offline data: always the starting policy's samples
            sampler = self.load_policy(0)[0]
        elif cfg.sample_from == "mixture":  # Algorithm 4, Option II: π_t^(1−α)·π₁^α
            mix_with = self.load_policy(0)[0]
        texts, finished = sample_sharded(sampler, tokenizer, part.prompts, cfg.samples_per_prompt, cfg.sampling,
                                         cfg.seed * 1000 + t, self.state, self.world.chat, self.show_progress,
                                         f"iter {t}: sampling", reference=mix_with, alpha=cfg.mixture_alpha)
        gold = self.world.teacher_answers(part.prompts, texts, finished, part.gold) if cfg.use_gold else None
        return [{"prompt_index": i, "prompt": part.prompts[i], "responses": texts[i], "finished": finished[i],
                 "gold": completion_text(gold[i], self.world.chat) if cfg.use_gold else None}
                for i in range(len(part))]

    def judge(self, samples, t: int) -> list[dict]:
        """The judge's win matrix over each prompt's candidates (samples, then gold), and each
        candidate's win rate r̂(y): the estimate of r_t(x, y) in Algorithm 2, line 5."""
        cfg, rows = self.config, samples.to_list()
        candidates = [r["responses"] + ([r["gold"]] if cfg.use_gold else []) for r in rows]
        finished = [r["finished"] + ([True] if cfg.use_gold else []) for r in rows]
        verdicts = judge_sharded(self.world.judge, rows, candidates, finished, self.state)
        share = invalid_share(verdicts[0])
        if share > cfg.max_invalid_share:
            raise InvalidJudgmentsError(
                f"the judge returned NaN (invalid) for {share:.0%} of the comparisons in iteration {t}, more "
                f"than max_invalid_share={cfg.max_invalid_share}. Check the judge (its prompt, parsing or "
                "output scale) before training on its verdicts")
        out = [{"prompt_index": r["prompt_index"], "prompt": r["prompt"], "candidates": c, "finished": f,
                "has_gold": cfg.use_gold, "scores": [float(x) for x in wr], "win_matrix": W.tolist(),
                "raw_scores": None if raw is None else [float(x) for x in raw],
                "degenerate": [is_degenerate(x) for x in c]}
               for r, c, f, W, wr, raw in zip(rows, candidates, finished, *verdicts, strict=True)]
        if cfg.ranker == "reward_model":  # the iterative-DPO recipe ranks with a fitted BT model
            ranker = reward_model_ranker(self.rundir, out if t == 1 else None, self.config.seed, self.world.chat,
                                         self.state, self.show_progress)
            _, rank_rates, rank_raw = judge_sharded(ranker, rows, candidates, finished, self.state)
            for row, rates, raw in zip(out, rank_rates, rank_raw, strict=True):
                row["rank_scores"], row["rank_raw_scores"] = [float(x) for x in rates], [float(x) for x in raw]
        return out

    def make_pairs(self, judged, t: int) -> list[dict]:
        """Pairs in TRL's prompt/chosen/rejected columns plus ours (win rates, soft label, type)."""
        return pair_rows(judged, self.config.pairs, t) or [EMPTY_PAIR]

    def train(self, t: int, policy, tokenizer, pairs):
        """π_{t+1}: one pass of the contrastive step from π_t, reference log-probs computed once."""
        cfg, start = self.config, time.perf_counter()
        earlier = [self.rundir.pairs(s) for s in range(t - 1, 0, -1)] if cfg.replay else []
        train, steps = with_replay(pairs, earlier, cfg.replay, np.random.default_rng([cfg.seed, t, 17])), []
        if len(train):
            train = reference_logps(tokenize_pairs(train, tokenizer, self.world.chat), cfg.reference, policy,
                                    lambda: self.load_policy(0)[0], tokenizer, cfg.training,
                                    cfg.mixture_alpha, self.show_progress)
            self.timings["reference_logps_s"] = time.perf_counter() - start
            start = time.perf_counter()
            policy, steps = train_on_pairs(policy, tokenizer, train, cfg.training,
                                           str(self.rundir.iteration(t) / ".trainer"), seed=cfg.seed * 1000 + t,
                                           world_size=self.state.num_processes, show_progress=self.show_progress)
        if self.is_main:
            shutil.rmtree(self.rundir.iteration(t) / ".trainer", ignore_errors=True)
            save_pretrained_atomic(policy, tokenizer, self.rundir.policy(t))
            self.rundir.write_train_log(t, {"losses": [s["loss"] for s in steps], "steps": steps,
                                            "pairs_new": len(pairs), "pairs_trained": len(train),
                                            "seconds": time.perf_counter() - start})
        self.state.wait_for_everyone()
        self.timings["training_s"] = time.perf_counter() - start  # after the reference log-probs

    def load_policy(self, t: int):
        """π_{t+1} (t = 0: π₁) and its tokenizer, from the run folder."""
        path = str(self.rundir.policy(t))
        tokenizer = load_tokenizer(path, pad_with_eos=self.config.model.pad_with_eos)
        model = load_causal_lm(path, device=self.state.device)
        if self.state.device.type == "cpu" and self.state.num_processes == 1:
            threads_for_model(model)  # one thread for tiny models, every core for real ones
        return model, tokenizer

    # -- evaluation and the whole run -----------------------------------------------------------
    def evaluate(self, t: int, table2: dict | None = None):
        """Evaluate iterate t and write its metrics.json, which marks the iteration done."""
        if exists_everywhere(self.rundir.metrics_path(t), self.state):
            return
        start = time.perf_counter()
        policy, tokenizer = self.load_policy(t)
        metrics = evaluate_iterate(t, policy, tokenizer, config=self.config, world=self.world, judges=self.judges,
                                   parts=self.parts, rundir=self.rundir, state=self.state,
                                   show_progress=self.show_progress)
        if self.is_main:
            if table2 is not None:
                metrics["training_data"] = table2
            self.timings["evaluation_s"] = time.perf_counter() - start
            metrics["timings"], metrics["reused_stages"] = self.timings, self.reused
            self.rundir.write_metrics(t, metrics)
            if self.show_progress:
                tqdm.write(f"[{self.config.name}] iteration {t}: {headline(metrics)}")
        self.state.wait_for_everyone()

    def run_initial(self) -> dict:
        """Build (if missing) and evaluate the starting policy π₁; returns its metrics."""
        if 0 not in self.rundir.done_iterations():
            self.timings, self.reused = {}, []
            if not exists_everywhere(self.rundir.policy(0) / "config.json", self.state):
                if self.is_main:
                    self.rundir.iteration(0).mkdir(parents=True, exist_ok=True)
                    if self.show_progress:
                        tqdm.write(f"[{self.config.name}] building the starting policy π1")
                    self.world.build_initial_policy(self.rundir.policy(0), self.config.seed, self.show_progress)
                self.state.wait_for_everyone()
            policy, tokenizer = self.load_policy(0)
            every_prompt = [p for part in self.parts.values() for p in part.prompts]
            check_prompt_lengths(tokenizer, every_prompt, self.world.chat, self.config.sampling.max_new_tokens,
                                 policy)
            self.evaluate(0)
        return self.rundir.read_metrics(0)

    def run(self) -> dict:
        """Run every missing iteration and return the summary."""
        self.run_initial()
        bar = tqdm(range(1, self.config.iterations + 1), desc=f"DNO {self.config.name}",
                   disable=not (self.show_progress and self.is_main))
        for t in bar:
            if not exists_everywhere(self.rundir.metrics_path(t), self.state):
                self.iterate(t)
        return self.summarise()

    def summarise(self) -> dict:
        """Per-iteration metrics and the best iterate on the validation prompts (summary.json)."""
        per_iter = [self.rundir.read_metrics(t) for t in self.rundir.done_iterations()]
        summary = {"name": self.config.name, "iterations_done": len(per_iter) - 1,
                   "best_iterate": best_iterate(per_iter), "per_iteration": per_iter}
        if self.is_main:
            self.rundir.write_summary(summary)
        return summary


def run_dno(config: DNOConfig, show_progress: bool = True, judge=None, heldout_judges=None) -> dict:
    """Run (or resume) DNO as configured and return the summary; ``judge`` overrides the config's
    training judge and ``heldout_judges`` its held-out judges."""
    return DNORun(config, show_progress=show_progress, judge=judge, heldout_judges=heldout_judges).run()
