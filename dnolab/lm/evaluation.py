"""Evaluation of DNO iterates: win rate against the teacher, head-to-head between iterates,
the uniform mixture of iterates, and the paper's Table 2 statistics of the training data.

Intervals are normal-approximation 95 % intervals over prompts (each prompt's judgments are
averaged first, so prompts are the independent units).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .judges import check_preferences


def mean_interval(per_prompt) -> dict:
    """Mean and 95 % half-width (1.96·SE) over prompts, NaN entries left out."""
    x = np.asarray(per_prompt, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return {"mean": float("nan"), "ci95": float("nan"), "n": 0}
    se = x.std(ddof=1) / np.sqrt(x.size) if x.size > 1 else float("nan")
    return {"mean": float(x.mean()), "ci95": float(1.96 * se), "n": int(x.size)}


def _judge_per_prompt(judge, prompts, samples: dict[int, list[str]], opponents: dict[int, list[str]]) -> np.ndarray:
    """Mean over sample pairs of P(sample ≻ opponent) for each prompt index in ``samples``."""
    rows_p, rows_a, rows_b, owner = [], [], [], []
    keys = sorted(samples)
    for k in keys:
        opp = opponents[k]
        for i, response in enumerate(samples[k]):
            rows_p.append(prompts[k])
            rows_a.append(response)
            rows_b.append(opp[i % len(opp)])
            owner.append(k)
    p = check_preferences(judge.preference(rows_p, rows_a, rows_b), getattr(judge, "name", "judge"))
    owner = np.asarray(owner)
    out = np.full(len(keys), np.nan)
    for n, k in enumerate(keys):
        vals = p[owner == k]
        vals = vals[~np.isnan(vals)]
        if vals.size:
            out[n] = vals.mean()
    return out


def win_rate_vs_teacher(judge, prompts: list[str], samples: dict[int, list[str]], gold: list[str]) -> dict:
    """P(π ≻ teacher): each sample judged against the prompt's gold answer."""
    return mean_interval(_judge_per_prompt(judge, prompts, samples, {k: [gold[k]] for k in samples}))


def head_to_head(judge, prompts: list[str], new: dict[int, list[str]], old: dict[int, list[str]]) -> dict:
    """P(π_new ≻ π_old): sample i of the new policy against sample i of the old one."""
    return mean_interval(_judge_per_prompt(judge, prompts, new, old))


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
    from datasets import load_from_disk

    from .loop import iteration_dir

    rows = load_from_disk(str(iteration_dir(Path(run_dir), t) / "eval_samples")).to_list()
    rows.sort(key=lambda r: r["prompt_index"])
    gold = [r["gold"] for r in rows] if rows and rows[0].get("gold") is not None else None
    return [r["prompt"] for r in rows], gold, {i: [x.strip() for x in r["responses"]] for i, r in enumerate(rows)}


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
