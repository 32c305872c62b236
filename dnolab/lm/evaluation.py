"""Evaluation of DNO iterates: win rate against the teacher, head-to-head between iterates,
under the training judge and under held-out judges the run never trained on; the uniform
mixture of iterates; the paper's Table 2 statistics of the training data.

Intervals are normal-approximation 95 % intervals over prompts (each prompt's judgments are
averaged first, so prompts are the independent units). A win rate is never reported from a
judge that could not decide more than ``max_invalid_share`` of its comparisons.
"""

from __future__ import annotations

import numpy as np

from .distributed import exists_everywhere
from .errors import InvalidJudgmentsError
from .judges import judge_name, preferences
from .rundir import EVAL_SAMPLES, RunDir, save_rows
from .sampling import sample_sharded


def mean_interval(per_prompt) -> dict:
    """Mean and 95 % half-width (1.96·SE) over prompts, NaN entries left out."""
    x = np.asarray(per_prompt, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return {"mean": float("nan"), "ci95": float("nan"), "n": 0}
    se = x.std(ddof=1) / np.sqrt(x.size) if x.size > 1 else float("nan")
    return {"mean": float(x.mean()), "ci95": float(1.96 * se), "n": int(x.size)}


def _judge_per_prompt(judge, prompts, samples: dict[int, list[str]], opponents: dict[int, list[str]],
                      samples_finished=None, opponents_finished=None, max_invalid_share: float = 0.5,
                      what: str = "evaluation") -> np.ndarray:
    """Mean over sample pairs of P(sample ≻ opponent) for each prompt index in ``samples``.

    Sample i of a prompt meets opponent i (cycling through the opponents). Invalid (NaN)
    verdicts are left out; when more than ``max_invalid_share`` of them are invalid, or none
    is valid, it raises :class:`InvalidJudgmentsError` instead of reporting a number.
    """
    rows_p, rows_a, rows_b, fin_a, fin_b, owner = [], [], [], [], [], []
    keys = sorted(samples)
    for k in keys:
        opp = opponents[k]
        for i, response in enumerate(samples[k]):
            rows_p.append(prompts[k])
            rows_a.append(response)
            rows_b.append(opp[i % len(opp)])
            fin_a.append(True if samples_finished is None else samples_finished[k][i])
            fin_b.append(True if opponents_finished is None else opponents_finished[k][i % len(opp)])
            owner.append(k)
    p = preferences(judge, rows_p, rows_a, rows_b, fin_a, fin_b)
    bad = int(np.isnan(p).sum())
    if p.size == 0 or bad > max_invalid_share * p.size or bad == p.size:
        raise InvalidJudgmentsError(
            f"{what}: judge {judge_name(judge)!r} could not decide {bad} of {p.size} comparisons (NaN), "
            f"more than max_invalid_share={max_invalid_share}; no win rate is reported from so few. Check "
            "the judge (its prompt, the parsing of its replies, its model's size) on a few of these pairs")
    owner = np.asarray(owner)
    out = np.full(len(keys), np.nan)
    for n, k in enumerate(keys):
        vals = p[owner == k]
        vals = vals[~np.isnan(vals)]
        if vals.size:
            out[n] = vals.mean()
    return out


def win_rates_vs_teacher_per_prompt(judge, prompts: list[str], samples: dict[int, list[str]], gold: list[str],
                                    finished=None, max_invalid_share: float = 0.5,
                                    what: str = "win rate vs teacher") -> np.ndarray:
    """Per prompt (sorted keys of ``samples``): mean P(sample ≻ the gold answer, which ended).
    Two iterates answered the same evaluation prompts, so their difference is best measured paired,
    prompt by prompt: ``mean_interval(after − before)`` is much tighter than two means' intervals."""
    return _judge_per_prompt(judge, prompts, samples, {k: [gold[k]] for k in samples},
                             finished, None, max_invalid_share, what)


def win_rate_vs_teacher(judge, prompts: list[str], samples: dict[int, list[str]], gold: list[str],
                        finished=None, max_invalid_share: float = 0.5, what: str = "win rate vs teacher") -> dict:
    """P(π ≻ teacher): each sample judged against the prompt's gold answer (which ended)."""
    return mean_interval(win_rates_vs_teacher_per_prompt(judge, prompts, samples, gold, finished,
                                                         max_invalid_share, what))


def head_to_head(judge, prompts: list[str], new: dict[int, list[str]], old: dict[int, list[str]],
                 new_finished=None, old_finished=None, max_invalid_share: float = 0.5,
                 what: str = "head to head") -> dict:
    """P(π_new ≻ π_old): sample i of the new policy against sample i of the old one."""
    return mean_interval(_judge_per_prompt(judge, prompts, new, old, new_finished, old_finished,
                                           max_invalid_share, what))


def compare_under_judges(judges: dict, prompts, samples, finished, gold=None, previous=None,
                         previous_finished=None, max_invalid_share: float = 0.5, iterate: str = "") -> dict:
    """Win rate vs the teacher and head-to-head vs the previous iterate under each judge."""
    out = {}
    for label, judge in judges.items():
        row = {}
        if gold is not None:
            row["win_rate_vs_teacher"] = win_rate_vs_teacher(
                judge, prompts, samples, gold, finished, max_invalid_share,
                f"{iterate} vs the teacher under judge {label!r}")
        if previous is not None:
            row["head_to_head_vs_previous"] = head_to_head(
                judge, prompts, samples, previous, finished, previous_finished, max_invalid_share,
                f"{iterate} vs its predecessor under judge {label!r}")
        out[label] = row
    return out


def response_summary(world, judges: dict, prompts, samples, finished) -> dict:
    """Diagnostics of a policy's evaluation answers: length, share cut at ``max_new_tokens``,
    the world's own (toy: exact match, styles) and any judge's ``response_metrics`` (a custom
    judge adds its own numbers to every iteration's metrics.json this way)."""
    keys = sorted(samples)
    flat_p = [prompts[k] for k in keys for _ in samples[k]]
    flat_r = [r for k in keys for r in samples[k]]
    flat_f = [f for k in keys for f in finished[k]]
    out = {"mean_length": float(np.mean([len(r.split()) for r in flat_r])),
           "cut_share": float(1 - np.mean(flat_f))}
    out |= world.response_metrics(flat_p, flat_r)
    for label, judge in judges.items():
        extra = getattr(judge, "response_metrics", None)
        if callable(extra):
            numbers = extra(flat_p, flat_r, finished=flat_f)
            if numbers not in out.values():  # two judges of one task report the same numbers once
                out[label] = numbers
    return out


def evaluate_iterate(t: int, policy, tokenizer, *, config, world, judges: dict, parts, rundir, state,
                     show_progress: bool = True) -> dict | None:
    """The metrics of iterate t (π_{t+1}; t = 0 is π₁) on the held-out prompts, or None on
    processes other than the main one.

    Its evaluation answers are saved (``eval_samples``), so later iterates are compared with it
    on the same prompts; validation answers (to pick the best iterate, Algorithm 2's return
    value) are drawn afresh. ``judges`` maps a label to a judge; the first is the training judge.
    """
    ev, val = parts["eval"], parts["validation"]
    seed, chat, E = config.seed, world.chat, config.eval
    path = rundir.stage(t, EVAL_SAMPLES)
    if not exists_everywhere(path, state):
        samples, finished = sample_sharded(policy, tokenizer, ev.prompts, E.samples_per_prompt, config.sampling,
                                           seed * 1000 + 500 + t, state, chat, show_progress, f"iter {t}: eval")
        save_rows([{"prompt_index": i, "prompt": ev.prompts[i], "responses": samples[i], "finished": finished[i],
                    "gold": ev.gold[i] if ev.gold is not None else None} for i in range(len(ev))],
                  path, state.is_main_process)
        state.wait_for_everyone()
    val_samples, val_finished = sample_sharded(policy, tokenizer, val.prompts, 1, config.sampling,
                                               seed * 1000 + 900 + t, state, chat, False, "validation")
    if not state.is_main_process:
        return None
    samples, finished = rundir.eval_samples(t), rundir.eval_finished(t)
    previous = (rundir.eval_samples(t - 1), rundir.eval_finished(t - 1)) if t > 0 else (None, None)
    iterate, limit = f"iterate π{t + 1} (iteration {t})", config.max_invalid_share
    compared = compare_under_judges(judges, ev.prompts, samples, finished, ev.gold, *previous, limit, iterate)
    train_label = next(iter(judges))
    metrics = {"iteration": t, "n_eval_prompts": len(ev), **compared.pop(train_label)}
    if val.gold is not None:
        metrics["validation_win_rate"] = win_rate_vs_teacher(
            judges[train_label], val.prompts, {i: [r.strip() for r in rs] for i, rs in val_samples.items()},
            val.gold, val_finished, limit, f"{iterate} on the validation prompts")
    metrics["heldout"] = compared
    metrics["responses"] = response_summary(world, judges, ev.prompts, samples, finished)
    metrics["judge_invalid"] = {label: int(getattr(j, "invalid_count", 0)) for label, j in judges.items()}
    return metrics


def mean_token_logps(model, tokenizer, prompts, responses, finished=None, chat: bool = True,
                     batch_size: int = 32) -> np.ndarray:
    """Per answer, the mean log-probability per token under ``model`` (e.g. the starting policy):
    a fluency measure that a policy cannot raise by meeting constraints with unnatural text.
    An answer that ended is scored with the token that ends it (``end_of_turn_id``), a cut one without."""
    import torch

    from .data import encode_prompt, end_of_turn_id
    from .losses import completion_logps
    from .trainer import PreferenceCollator

    collate, device, out = PreferenceCollator(tokenizer.pad_token_id), next(model.parameters()).device, []
    ended = [True] * len(responses) if finished is None else list(finished)
    end = end_of_turn_id(tokenizer, chat)
    rows = []
    for p, r, done in zip(prompts, responses, ended, strict=True):
        ids = tokenizer(r.strip(), add_special_tokens=False)["input_ids"] + ([end] if done else [])
        rows.append((encode_prompt(tokenizer, p, chat), ids))
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(device) for k, v in collate.rows(rows[start:start + batch_size]).items()}
            total = completion_logps(model, batch).float().cpu().numpy()
            out.append(total / np.maximum(batch["completion_mask"].sum(dim=1).cpu().numpy(), 1))
    return np.concatenate(out) if out else np.zeros(0)


def best_iterate(per_iteration: list[dict]) -> int | None:
    """Algorithm 2's return value: the iterate with the highest validation win rate (the first
    one on ties); None when no iterate has one."""
    rates = [(m.get("validation_win_rate") or {}).get("mean") for m in per_iteration]
    scored = [(r, -t) for t, r in enumerate(rates) if r is not None]
    return -max(scored)[1] if scored else None


def headline(metrics: dict) -> str:
    """One line for the log: win rate vs the teacher and vs the previous iterate."""
    parts = []
    for key, name in (("win_rate_vs_teacher", "win rate vs teacher"), ("head_to_head_vs_previous", "vs previous")):
        if key in metrics:
            parts.append(f"{name} {metrics[key]['mean']:.3f} ± {metrics[key]['ci95']:.3f}")
    return ", ".join(parts) or "evaluated"


def mixture_samples(samples_by_iterate: list[dict[int, list[str]]], seed: int) -> dict[int, list[str]]:
    """Samples of the uniform mixture of iterates (what DNO's theory returns): for every prompt
    and sample slot, the sample of a uniformly chosen iterate."""
    if not samples_by_iterate:
        raise ValueError("need at least one iterate")
    rng = np.random.default_rng(seed)
    keys = sorted(samples_by_iterate[0])
    out = {}
    for k in keys:
        n = len(samples_by_iterate[0][k])
        pick = rng.integers(len(samples_by_iterate), size=n)
        out[k] = [samples_by_iterate[int(j)][k][i] for i, j in enumerate(pick)]
    return out


def table2_statistics(win_matrices, scores, has_gold: bool, responses, pairs_by_type: dict) -> dict:
    """The paper's Table 2 analogue for one iteration's training data.

    best-of-K win rate: share of prompts where some student sample beats the gold answer
    (P > 1/2); mean student wins: students per prompt that beat it; mean student and teacher
    scores; new pairs by type; student response length in words (mean and sd).
    """
    lengths = [len(r.split()) for rs in responses for r in rs]
    out = {"prompts": len(win_matrices), "pairs": pairs_by_type,
           "student_length_mean": float(np.mean(lengths)) if lengths else float("nan"),
           "student_length_sd": float(np.std(lengths)) if lengths else float("nan")}
    if has_gold:
        beats = [np.nan_to_num(W[:-1, -1], nan=0.0) > 0.5 for W in win_matrices]
        out["best_of_k_win_rate"] = float(np.mean([b.any() for b in beats]))
        out["mean_student_wins"] = float(np.mean([b.sum() for b in beats]))
        out["mean_teacher_score"] = _nanmean([s[-1] for s in scores])
        out["mean_student_score"] = _nanmean(np.concatenate([s[:-1] for s in scores]))
    else:
        out["mean_student_score"] = _nanmean(np.concatenate(scores))
    return out


def _nanmean(values) -> float:
    """Mean of the valid (non-NaN) values; NaN when every judgment was invalid."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def load_eval(run_dir, t: int) -> tuple[list[str], list[str] | None, dict[int, list[str]]]:
    """Evaluation prompts, gold answers and iterate t's responses of a finished run folder."""
    return RunDir(run_dir).load_eval(t)


def length_controlled_win_rate(p, length_diff, groups=None) -> dict:
    """Win rates with the length effect regressed out, in the spirit of AlpacaEval 2.0's LC.

    Fits logit P(y ≻ baseline) ≈ θ_g + φ·tanh(Δlen / sd(Δlen)) by maximum likelihood on soft
    labels p (one θ per group g, e.g. per iterate; one shared length slope φ), and returns
    σ(θ_g): the win rate each group would have at equal length. (AlpacaEval also models the
    instruction; our prompts are exchangeable, so it is left out.)
    """
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    p = np.asarray(p, dtype=float)
    d = np.asarray(length_diff, dtype=float)
    g = np.zeros(len(p), dtype=int) if groups is None else np.asarray(groups)
    labels, index = np.unique(g, return_inverse=True)
    if p.shape != d.shape or p.shape != index.shape or not len(p):
        raise ValueError("p, length_diff and groups must be non-empty and of equal length")
    scale = d.std() if d.std() > 0 else 1.0
    x = np.tanh(d / scale)

    def nll(w):
        z = w[index] + w[-1] * x
        return -(p * log_expit(z) + (1 - p) * log_expit(-z)).sum()

    w = minimize(nll, np.zeros(len(labels) + 1), method="L-BFGS-B").x
    return {"lc_win_rate": dict(zip(labels.tolist(), expit(w[:-1]).tolist(), strict=True)),
            "length_slope": float(w[-1]), "length_scale": float(scale)}
