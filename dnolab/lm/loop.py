"""The DNO-Prct outer loop (Algorithm 2) with a resumable run directory.

::

    runs/<name>/config.yaml
    runs/<name>/iter_00/policy/, eval_samples/, metrics.json       π₁ and its evaluation
    runs/<name>/iter_01/samples/, judgments/, pairs/, policy/ (π₂), train_log.json, eval_samples/, metrics.json
    ...
    runs/<name>/summary.json

Every stage writes into a temporary folder and renames it, so a stage's output exists only
when complete; ``metrics.json`` is written last and marks the iteration done. A rerun of the
same command skips done iterations and finished stages, so nothing is redone or lost.
Each iteration t: load π_t from disk → sample K responses per prompt of partition t → judge
them with the gold answer → keep large-margin pairs (or soft-label pairs) → add replayed
pairs → compute π_t's reference log-probs → train π_{t+1} warm-started from π_t → evaluate.
Under ``torchrun`` the prompts are sharded across processes and gathered; the Trainer runs
data-parallel; process 0 writes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import yaml
from tqdm.auto import tqdm

from .config import ConfigError, DNOConfig
from .data import (
    DNOInputError,
    atomic_dir,
    check_prompt_lengths,
    load_causal_lm,
    load_tokenizer,
    save_pretrained_atomic,
    split_prompts,
)
from .evaluation import head_to_head, table2_statistics, win_rate_vs_teacher
from .judges import judge_win_matrices
from .pairs import count_types, replay_counts, select_pairs
from .sampling import batch_indices, is_degenerate, sample_responses
from .trainer import add_reference_logps, tokenize_pairs, train_on_pairs
from .world import World, make_world


class CorruptRunError(RuntimeError):
    """The run directory is inconsistent; the message says what is wrong and how to recover."""


# --- run directory -------------------------------------------------------------------------------

def iteration_dir(run_dir: Path, t: int) -> Path:
    return run_dir / f"iter_{t:02d}"


def write_json(path: Path, data) -> None:
    """Write JSON atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_metrics(run_dir: Path, t: int) -> dict:
    path = iteration_dir(run_dir, t) / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CorruptRunError(
            f"{path} is unreadable ({err}); delete {path.parent} to redo that iteration") from None


def done_iterations(run_dir: Path) -> list[int]:
    """Indices of finished iterations; checks that they are contiguous from 0 and complete."""
    done = sorted(int(p.name[5:]) for p in run_dir.glob("iter_[0-9][0-9]") if (p / "metrics.json").exists())
    for expected, t in enumerate(done):
        if t != expected:
            raise CorruptRunError(
                f"{run_dir} has iteration {t} finished but iteration {expected} is not; "
                f"delete {iteration_dir(run_dir, t)} and later iterations to recover")
        if not (iteration_dir(run_dir, t) / "policy" / "config.json").exists():
            raise CorruptRunError(
                f"{iteration_dir(run_dir, t)} is marked done but has no policy; delete that folder to redo it")
        read_metrics(run_dir, t)
    return done


def prepare_run_dir(config: DNOConfig, is_main: bool) -> Path:
    """Create the run folder or check that an existing one was started with the same config.

    Only ``iterations`` may differ (to extend a finished run).
    """
    run_dir = config.run_dir()
    stored_path = run_dir / "config.yaml"
    if stored_path.exists():
        try:
            stored = yaml.safe_load(stored_path.read_text())
        except yaml.YAMLError as err:
            raise CorruptRunError(f"{stored_path} is not valid YAML ({err}); delete {run_dir} to start over") from None
        if not isinstance(stored, dict):
            raise CorruptRunError(f"{stored_path} does not hold a config; delete {run_dir} to start over")
        diff = _config_diff(stored, config.to_dict())
        if diff:
            raise ConfigError(
                f"{run_dir} was started with a different config ({'; '.join(diff[:5])}). "
                "Use another name, or delete the folder to start over")
    elif is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = stored_path.with_name(".config.yaml.tmp")
        tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        os.replace(tmp, stored_path)
    return run_dir


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if prefix == "" and key == "iterations":
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


# --- distributed helpers -------------------------------------------------------------------------

def _state():
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _gather_dict(local: dict, state) -> dict:
    if state.num_processes == 1:
        return local
    from accelerate.utils import gather_object

    merged = {}
    for part in gather_object([local]):
        merged.update(part)
    return merged


def _my_share(n: int, state) -> list[int]:
    return [i for i in range(n) if i % state.num_processes == state.process_index]


# --- stages ----------------------------------------------------------------------------------------

def completion_text(text: str, chat: bool) -> str:
    """Responses are stored as TRL expects raw-text completions: with a leading space (none for chat)."""
    text = text.strip()
    return text if chat else " " + text


def _sample(policy, tokenizer, prompts, k, config: DNOConfig, seed: int, state, chat: bool,
            show_progress: bool, desc: str, reference=None) -> dict[int, list[str]]:
    n_batches = len(batch_indices(len(prompts), config.sampling.batch_size))
    local = sample_responses(policy, tokenizer, prompts, k, config.sampling, seed, chat=chat,
                             batches=_my_share(n_batches, state), show_progress=show_progress, desc=desc,
                             reference=reference, alpha=config.mixture_alpha)
    merged = _gather_dict(local, state)
    return {i: [completion_text(r, chat) for r in merged[i]] for i in range(len(prompts))}


def _judge(world: World, prompts, candidates, state) -> tuple[list, list]:
    mine = _my_share(len(prompts), state)
    mats, scores = judge_win_matrices(world.judge, [prompts[i] for i in mine], [candidates[i] for i in mine])
    merged = _gather_dict({i: (m, s) for i, m, s in zip(mine, mats, scores, strict=True)}, state)
    return [merged[i][0] for i in range(len(prompts))], [merged[i][1] for i in range(len(prompts))]


def _invalid_share(mats) -> float:
    total = sum(m.size - len(m) for m in mats)
    bad = sum(int(np.isnan(m).sum()) for m in mats)
    return bad / max(total, 1)


def _save_rows(rows: list[dict], dest: Path, enabled: bool):
    from datasets import Dataset

    with atomic_dir(dest, enabled) as tmp:
        if enabled:
            Dataset.from_list(rows).save_to_disk(str(tmp))


def _load_rows(path: Path):
    from datasets import load_from_disk

    return load_from_disk(str(path))


class DNORun:
    """One DNO run: ``DNORun(config).run()``; rerunning resumes where it stopped."""

    def __init__(self, config: DNOConfig, show_progress: bool = True, judge=None):
        """``judge`` replaces the configured one: any object with ``preference`` or ``scores``
        (see dnolab.lm.judges), e.g. your own preference model."""
        self.config = config
        self.show_progress = show_progress
        self.state = _state()
        if self.state.device.type == "cpu":
            from ..utils import set_cpu_threads

            set_cpu_threads()  # the default thread count makes small models many times slower
        self.is_main = self.state.is_main_process
        self.run_dir = prepare_run_dir(config, self.is_main)
        self.state.wait_for_everyone()
        self.world = make_world(config, device=self.state.device, judge=judge)
        T, P, E = config.iterations, config.prompts_per_iteration, config.eval
        sizes = {f"iter_{t:02d}": P for t in range(1, T + 1)}
        sizes |= {"validation": E.validation_prompts, "eval": E.prompts}
        pool = self.world.prompt_pool(sum(sizes.values()), config.seed)
        if config.use_gold and pool.gold is None:
            raise DNOInputError("use_gold: true but the prompt set has no gold answers")
        self.parts = split_prompts(pool, sizes, config.seed)

    # -- helpers --
    def _done(self, path: Path) -> bool:
        """Whether a stage's output exists, decided by every process before any of them writes it."""
        done = path.exists()
        self.state.wait_for_everyone()
        return done

    def _log(self, message: str):
        if self.is_main and self.show_progress:
            tqdm.write(message)

    def _policy(self, t: int):
        path = iteration_dir(self.run_dir, t) / "policy"
        tokenizer = load_tokenizer(str(path), pad_with_eos=self.config.model.pad_with_eos)
        model = load_causal_lm(str(path), device=self.state.device)
        return model, tokenizer

    def eval_samples(self, t: int) -> dict[int, list[str]]:
        """Iterate t's responses to the evaluation prompts, ``{prompt index: [responses]}``."""
        rows = _load_rows(iteration_dir(self.run_dir, t) / "eval_samples")
        return {int(r["prompt_index"]): [x.strip() for x in r["responses"]] for r in rows}

    # -- iteration 0 --
    def _initial(self):
        d = iteration_dir(self.run_dir, 0)
        if not self._done(d / "policy" / "config.json"):
            if self.is_main:
                d.mkdir(parents=True, exist_ok=True)
                self._log(f"[{self.config.name}] building the starting policy π1")
                self.world.build_initial_policy(d / "policy", self.config.seed, self.show_progress)
            self.state.wait_for_everyone()
        policy, tokenizer = self._policy(0)
        every_prompt = [p for part in self.parts.values() for p in part.prompts]
        check_prompt_lengths(tokenizer, every_prompt, self.world.chat, self.config.sampling.max_new_tokens, policy)
        self._evaluate(0, policy, tokenizer, timings={})

    # -- one iteration --
    def iterate(self, t: int):
        cfg, d = self.config, iteration_dir(self.run_dir, t)
        if self.is_main:
            d.mkdir(parents=True, exist_ok=True)
        part = self.parts[f"iter_{t:02d}"]
        prompts, gold = part.prompts, part.gold
        timings = {}
        policy, tokenizer = self._policy(t - 1)

        start = time.perf_counter()
        if not self._done(d / "samples"):
            sampler, mix_with = policy, None  # π_t, on-policy (Algorithm 2, line 4)
            if cfg.sample_from == "initial":  # offline data: always the starting policy's samples
                sampler = self._policy(0)[0]
            elif cfg.sample_from == "mixture":  # Algorithm 4, Option II: π_t^(1−α)·π₁^α
                mix_with = self._policy(0)[0]
            samples = _sample(sampler, tokenizer, prompts, cfg.samples_per_prompt, cfg, seed=cfg.seed * 1000 + t,
                              state=self.state, chat=self.world.chat, show_progress=self.show_progress,
                              desc=f"iter {t}: sampling", reference=mix_with)
            _save_rows([{"prompt_index": i, "prompt": prompts[i], "responses": samples[i],
                         "gold": completion_text(gold[i], self.world.chat) if cfg.use_gold else None}
                        for i in range(len(prompts))], d / "samples", self.is_main)
            self.state.wait_for_everyone()
        samples = {int(r["prompt_index"]): list(r["responses"]) for r in _load_rows(d / "samples")}
        timings["sampling_s"] = time.perf_counter() - start

        start = time.perf_counter()
        if not self._done(d / "judgments"):
            candidates = [samples[i] + ([completion_text(gold[i], self.world.chat)] if cfg.use_gold else [])
                          for i in range(len(prompts))]
            mats, scores = _judge(self.world, prompts, [[c.strip() for c in cs] for cs in candidates], self.state)
            share = _invalid_share(mats)
            if share > cfg.max_invalid_share:
                raise DNOInputError(
                    f"the judge returned NaN (invalid) for {share:.0%} of the comparisons in iteration {t}, more "
                    f"than max_invalid_share={cfg.max_invalid_share}. Check the judge (its prompt, parsing or "
                    "output scale) before training on its verdicts")
            rows = [{"prompt_index": i, "prompt": prompts[i], "candidates": candidates[i],
                     "has_gold": cfg.use_gold, "scores": [float(x) for x in scores[i]],
                     "win_matrix": mats[i].tolist(), "degenerate": [is_degenerate(c) for c in candidates[i]]}
                    for i in range(len(prompts))]
            if cfg.ranker == "reward_model":
                ranker = self._reward_model(rows if t == 1 else None)
                _, rank_scores = judge_win_matrices(ranker, prompts, [[c.strip() for c in cs] for cs in candidates])
                for row, rs in zip(rows, rank_scores, strict=True):
                    row["rank_scores"] = [float(x) for x in rs]
            _save_rows(rows, d / "judgments", self.is_main)
            self.state.wait_for_everyone()
        judged = _load_rows(d / "judgments")
        timings["judging_s"] = time.perf_counter() - start

        start = time.perf_counter()
        if not self._done(d / "pairs"):
            rows = []
            for r in judged:
                ranking = r.get("rank_scores") or r["scores"]
                for p in select_pairs(ranking, r["has_gold"], cfg.pairs, r["degenerate"], r["candidates"]):
                    rows.append({"prompt": r["prompt"], "chosen": r["candidates"][p["chosen"]],
                                 "rejected": r["candidates"][p["rejected"]], "chosen_score": p["chosen_score"],
                                 "rejected_score": p["rejected_score"], "target": p["label"],
                                 "type": p["type"], "margin": p["margin"], "iteration": t})
            _save_rows(rows or [_EMPTY_PAIR], d / "pairs", self.is_main)
            self.state.wait_for_everyone()
        pairs = _load_rows(d / "pairs").filter(lambda r: r["iteration"] >= 0)
        timings["pairs_s"] = time.perf_counter() - start

        start = time.perf_counter()
        train_log = d / "train_log.json"
        if not self._done(d / "policy" / "config.json"):
            train = self._with_replay(pairs, t)
            losses = []
            if len(train):
                train = self._reference_logps(tokenize_pairs(train, tokenizer, self.world.chat), policy, tokenizer)
                timings["reference_logps_s"] = time.perf_counter() - start
                start = time.perf_counter()
                policy, losses = train_on_pairs(policy, tokenizer, train, cfg.training,
                                                str(d / ".trainer"), seed=cfg.seed * 1000 + t,
                                                world_size=self.state.num_processes,
                                                show_progress=self.show_progress)
            if self.is_main:
                shutil.rmtree(d / ".trainer", ignore_errors=True)
                save_pretrained_atomic(policy, tokenizer, d / "policy")
                write_json(train_log, {"losses": losses, "pairs_new": len(pairs), "pairs_trained": len(train),
                                       "seconds": time.perf_counter() - start})
            self.state.wait_for_everyone()
        timings["training_s"] = time.perf_counter() - start

        del policy
        policy, tokenizer = self._policy(t)
        stats = table2_statistics([np.array(m) for m in judged["win_matrix"]],
                                  [np.array(s, dtype=float) for s in judged["scores"]], cfg.use_gold,
                                  samples.values(), count_types([dict(r) for r in pairs]))
        self._evaluate(t, policy, tokenizer, timings, stats)

    def _reference_logps(self, train, policy, tokenizer):
        """The reference log-probs of the contrastive step, computed once per iteration:
        π_t (DNO), π₁ (DPO with a fixed reference), or the unnormalised geometric mixture
        (1−α)·log π_t + α·log π₁ (DNO's regularised Algorithm 4, reference π_t^(1−τ/η)·π_ref^(τ/η))."""
        cfg = self.config
        if cfg.training.loss == "sft":  # maximum likelihood has no reference
            return train.add_column("ref_chosen_logps", [0.0] * len(train)).add_column(
                "ref_rejected_logps", [0.0] * len(train))
        batch = cfg.training.reference_batch_size
        if cfg.reference == "previous":
            return add_reference_logps(policy, train, tokenizer, batch, show_progress=self.show_progress)
        initial = add_reference_logps(self._policy(0)[0], train, tokenizer, batch, show_progress=self.show_progress)
        if cfg.reference == "initial":
            return initial
        current = add_reference_logps(policy, train, tokenizer, batch, show_progress=self.show_progress)
        a = cfg.mixture_alpha
        mixed = {k: [(1 - a) * x + a * y for x, y in zip(current[k], initial[k], strict=True)]
                 for k in ("ref_chosen_logps", "ref_rejected_logps")}
        return current.remove_columns(list(mixed)).add_column(
            "ref_chosen_logps", mixed["ref_chosen_logps"]).add_column("ref_rejected_logps", mixed["ref_rejected_logps"])

    def _reward_model(self, first_judgments=None):
        """The BT reward model of ``ranker: reward_model``: fitted on iteration 1's judgments
        (those of π₁'s samples), then reused unchanged."""
        from .reward_model import fit_reward_model, load_reward_judge

        path = self.run_dir / "reward_model"
        if not self._done(path / "config.json"):
            if first_judgments is None:
                raise CorruptRunError(f"{path} is missing; delete {self.run_dir} to start over")
            if self.is_main:
                fit_reward_model(first_judgments, str(iteration_dir(self.run_dir, 0) / "policy"), path,
                                 seed=self.config.seed, chat=self.world.chat, show_progress=self.show_progress)
            self.state.wait_for_everyone()
        return load_reward_judge(path, self.world.chat, device=self.state.device)

    def _with_replay(self, pairs, t: int):
        """New pairs plus the paper's decaying share of earlier iterations' pairs (not re-sampled)."""
        from datasets import concatenate_datasets

        shares = self.config.replay
        if not shares or t == 1:
            return pairs
        earlier = [_load_rows(iteration_dir(self.run_dir, s) / "pairs").filter(lambda r: r["iteration"] >= 0)
                   for s in range(t - 1, 0, -1)]
        counts = replay_counts(len(pairs), [len(e) for e in earlier], shares)
        rng = np.random.default_rng([self.config.seed, t, 17])
        parts = [pairs] + [e.select(sorted(rng.choice(len(e), size=c, replace=False).tolist()))
                           for e, c in zip(earlier, counts, strict=True) if c > 0]
        return concatenate_datasets(parts)

    # -- evaluation --
    def _evaluate(self, t: int, policy, tokenizer, timings: dict, table2: dict | None = None):
        cfg, d = self.config, iteration_dir(self.run_dir, t)
        if self._done(d / "metrics.json"):
            return
        start = time.perf_counter()
        ev, val = self.parts["eval"], self.parts["validation"]
        if not self._done(d / "eval_samples"):
            samples = _sample(policy, tokenizer, ev.prompts, cfg.eval.samples_per_prompt, cfg,
                              seed=cfg.seed * 1000 + 500 + t, state=self.state, chat=self.world.chat,
                              show_progress=self.show_progress, desc=f"iter {t}: eval")
            _save_rows([{"prompt_index": i, "prompt": ev.prompts[i], "responses": samples[i],
                         "gold": ev.gold[i] if ev.gold is not None else None} for i in range(len(ev))],
                       d / "eval_samples", self.is_main)
            self.state.wait_for_everyone()
        samples = self.eval_samples(t)
        val_samples = _sample(policy, tokenizer, val.prompts, 1, cfg, seed=cfg.seed * 1000 + 900 + t,
                              state=self.state, chat=self.world.chat, show_progress=False, desc="validation")
        if not self.is_main:
            self.state.wait_for_everyone()
            return
        metrics = {"iteration": t, "n_eval_prompts": len(ev)}
        if ev.gold is not None:
            metrics["win_rate_vs_teacher"] = win_rate_vs_teacher(self.world.judge, ev.prompts, samples, ev.gold)
            metrics["validation_win_rate"] = win_rate_vs_teacher(
                self.world.judge, val.prompts, {i: [r.strip() for r in rs] for i, rs in val_samples.items()},
                val.gold)
        if t > 0:
            previous = self.eval_samples(t - 1)
            metrics["head_to_head_vs_previous"] = head_to_head(self.world.judge, ev.prompts, samples, previous)
        flat_p = [ev.prompts[i] for i in sorted(samples) for _ in samples[i]]
        flat_r = [r for i in sorted(samples) for r in samples[i]]
        metrics["responses"] = self.world.response_metrics(flat_p, flat_r)
        if table2 is not None:
            metrics["training_data"] = table2
        metrics["judge_invalid"] = int(getattr(self.world.judge, "invalid_count", 0))
        timings["evaluation_s"] = time.perf_counter() - start
        metrics["timings"] = timings
        write_json(d / "metrics.json", metrics)
        self.state.wait_for_everyone()
        wr = metrics.get("win_rate_vs_teacher", {})
        h2h = metrics.get("head_to_head_vs_previous")
        self._log(f"[{cfg.name}] iteration {t}: win rate vs teacher {wr.get('mean', float('nan')):.3f} "
                  f"± {wr.get('ci95', float('nan')):.3f}"
                  + (f", vs previous {h2h['mean']:.3f} ± {h2h['ci95']:.3f}" if h2h else ""))

    # -- the whole loop --
    def run_initial(self) -> dict:
        """Build (if missing) and evaluate the starting policy π₁; returns its metrics."""
        if 0 not in done_iterations(self.run_dir):
            self._initial()
        return self.iteration_metrics(0)

    def iteration_metrics(self, t: int) -> dict:
        """metrics.json of a finished iteration (0 = the starting policy)."""
        return read_metrics(self.run_dir, t)

    def run(self) -> dict:
        """Run every missing iteration and return the summary."""
        self.run_initial()
        bar = tqdm(range(1, self.config.iterations + 1), desc=f"DNO {self.config.name}",
                   disable=not (self.show_progress and self.is_main))
        for t in bar:
            if self._done(iteration_dir(self.run_dir, t) / "metrics.json"):
                continue
            self.iterate(t)
        return self.summarise()

    def summarise(self) -> dict:
        """Per-iteration metrics and the best iterate on the validation prompts (summary.json)."""
        done = done_iterations(self.run_dir)
        per_iter = [read_metrics(self.run_dir, t) for t in done]
        val = [m.get("validation_win_rate", {}).get("mean", float("-inf")) for m in per_iter]
        summary = {"name": self.config.name, "iterations_done": len(done) - 1,
                   "best_iterate": int(np.argmax(val)) if per_iter else None, "per_iteration": per_iter}
        if self.is_main:
            write_json(self.run_dir / "summary.json", summary)
        return summary


# A pairs dataset with no pairs still needs a schema; this row is filtered out when read.
_EMPTY_PAIR = {"prompt": "", "chosen": "", "rejected": "", "chosen_score": 0.0, "rejected_score": 0.0,
               "target": 1.0, "type": "T>S", "margin": 0.0, "iteration": -1}


def run_dno(config: DNOConfig, show_progress: bool = True, judge=None) -> dict:
    """Run (or resume) DNO as configured and return the summary; ``judge`` overrides the config's."""
    return DNORun(config, show_progress=show_progress, judge=judge).run()
