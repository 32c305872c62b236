"""From judged candidates to training pairs: DNO-Prct's large-margin rule, Algorithm 1's soft
labels, pair types, and replay of earlier iterations' pairs.

Candidates of a prompt are the K student samples plus (optionally) the gold answer, which is
always the last candidate. Each candidate's score is its **win rate** against the other
candidates, r̂(y) = mean_{y' ≠ y} P(y ≻ y' | x), the estimate of
r_t(x, y) = E_{y'~π_t} P(y ≻ y' | x) in Algorithm 2, line 5 — always in [0, 1], whatever the
judge's own scale (see dnolab.lm.judges.judge_win_matrices), so bands and margins mean the
same thing for every judge.
"""

from __future__ import annotations

import numpy as np

from .config import PAIR_MODES, PAIR_TYPES, PairRule

TEACHER_WINS, STUDENT_BEATS_TEACHER, STUDENT_BEATS_STUDENT = PAIR_TYPES

__all__ = [
    "EMPTY_PAIR",
    "PAIR_MODES",
    "PAIR_TYPES",
    "PairRule",
    "count_types",
    "pair_rows",
    "pair_type",
    "replay_counts",
    "replay_indices",
    "select_pairs",
    "with_replay",
]


def pair_type(pos_is_gold: bool, neg_is_gold: bool) -> str:
    if pos_is_gold:
        return TEACHER_WINS
    return STUDENT_BEATS_TEACHER if neg_is_gold else STUDENT_BEATS_STUDENT


def select_pairs(scores, has_gold: bool, rule: PairRule, degenerate=None, texts=None) -> list[dict]:
    """Pairs of one prompt as dicts (chosen/rejected candidate indices, win rates, soft label,
    margin, type, and whether the negative is an automatic negative).

    ``degenerate[i]`` marks automatic negatives (repeated n-grams): never chosen, and always
    far enough below any positive. NaN scores (invalid judgments) are left out. ``texts``
    (the candidates) lets ``rule.deduplicate`` drop repeated text pairs.
    """
    s = np.asarray(scores, dtype=float)
    n = len(s)
    gold = n - 1 if has_gold else None
    bad = np.zeros(n, bool) if degenerate is None else np.asarray(degenerate, bool)
    valid = ~np.isnan(s)
    if texts is not None and rule.deduplicate and gold is not None:
        # an identical student sample defers to the gold answer
        valid &= ~np.array([i != gold and texts[i] == texts[gold] for i in range(n)])

    def pair(i, j, label):
        margin = abs(s[i] - s[j]) if rule.mode == "soft" else s[i] - s[j]
        margin = margin if valid[i] and valid[j] else 0.0
        return {"chosen": int(i), "rejected": int(j), "chosen_score": float(s[i]),
                "rejected_score": float(s[j]), "label": float(label), "margin": float(margin),
                "auto_negative": bool(bad[j]), "type": pair_type(i == gold, j == gold)}

    def keep(candidates: list[dict], cap: int | None = None) -> list[dict]:
        """Allowed types and distinct text pairs first, then the cap (largest margins first)."""
        out, seen = [], set()
        for p in candidates:
            key = (texts[p["chosen"]], texts[p["rejected"]]) if texts is not None and rule.deduplicate else None
            if p["type"] not in rule.allowed_types or (key is not None and key in seen):
                continue
            seen.add(key)
            out.append(p)
        return out[:cap]

    if rule.mode in {"spin", "gold"}:
        if gold is None:
            raise ValueError(f"pairs.mode {rule.mode!r} needs the gold answer among the candidates")
        if rule.mode == "gold":
            return keep([pair(gold, gold, 1.0)])
        return keep([pair(gold, j, 1.0) for j in range(n - 1) if texts is None or texts[j] != texts[gold]])

    if rule.mode == "soft":
        return keep([pair(i, j, 1.0 / (1.0 + np.exp(-rule.soft_label_scale * (s[i] - s[j]))))
                     for i in range(n) for j in range(i + 1, n)
                     if valid[i] and valid[j] and not (bad[i] or bad[j])])

    ok = valid & ~bad
    if not ok.any():
        return []
    if rule.mode == "best_worst":  # iterative-DPO recipe: best vs worst candidate
        order = np.flatnonzero(ok)
        i = order[np.argmax(s[order])]
        j = order[np.argmin(s[order])] if not bad.any() else np.flatnonzero(bad)[0]
        return keep([pair(i, j, 1.0)]) if i != j and (bad[j] or s[i] > s[j]) else []

    best = s[ok].max()
    candidates = []
    for i in np.flatnonzero(ok):
        if rule.positive_min is not None and s[i] < rule.positive_min:
            continue
        if rule.positive_band is not None and s[i] < best - rule.positive_band:
            continue
        need = rule.margin_teacher if i == gold else rule.margin_student
        for j in range(n):
            if j != i and (bad[j] or (valid[j] and s[i] - s[j] >= need - 1e-12)):
                candidates.append(pair(i, j, 1.0))
    # automatic negatives first (the paper always keeps them), then by margin
    candidates.sort(key=lambda p: (not p["auto_negative"], 0.0 if p["auto_negative"] else -p["margin"],
                                   p["chosen"], p["rejected"]))
    return keep(candidates, rule.max_pairs_per_prompt)


def count_types(pairs: list[dict]) -> dict[str, int]:
    """How many pairs of each type (T>S, S>T, S>S)."""
    counts = dict.fromkeys(PAIR_TYPES, 0)
    for p in pairs:
        counts[p["type"]] += 1
    return counts


def replay_counts(n_new: int, n_available: list[int], shares) -> list[int]:
    """How many pairs to replay from each earlier iteration (most recent first).

    The paper adds "at most 30 % of training pairs from iteration t−1, 15 % from t−2, and so
    on"; we read the shares as fractions of this iteration's new-pair count, capped by what
    each earlier iteration has.
    """
    out = []
    for k, available in enumerate(n_available):
        share = shares[k] if k < len(shares) else 0.0
        out.append(int(min(available, round(share * n_new))))
    return out


def replay_indices(n_new: int, n_available: list[int], shares, rng: np.random.Generator) -> list[list[int]]:
    """Which pairs of each earlier iteration (most recent first) to replay: a uniform sample
    without replacement of :func:`replay_counts` pairs each, in their stored order."""
    counts = replay_counts(n_new, n_available, shares)
    return [sorted(rng.choice(n, size=c, replace=False).tolist()) if c > 0 else []
            for n, c in zip(n_available, counts, strict=True)]


def with_replay(pairs, earlier: list, shares, rng: np.random.Generator):
    """New pairs plus the paper's decaying share of earlier iterations' pairs (``earlier``:
    datasets, most recent first), replayed as they were, not re-sampled."""
    from datasets import concatenate_datasets

    if not shares or not earlier:
        return pairs
    picks = replay_indices(len(pairs), [len(e) for e in earlier], shares, rng)
    return concatenate_datasets([pairs] + [e.select(i) for e, i in zip(earlier, picks, strict=True) if i])


# A pairs dataset with no pairs still needs a schema; this row is filtered out when read.
EMPTY_PAIR = {"prompt": "", "chosen": "", "rejected": "", "chosen_score": 0.0, "rejected_score": 0.0,
              "target": 1.0, "type": "T>S", "margin": 0.0, "auto_negative": False, "chosen_finished": True,
              "rejected_finished": True, "iteration": -1}


def pair_rows(judged, rule: PairRule, t: int) -> list[dict]:
    """Iteration t's pairs from its judgments (ranked by ``rank_scores`` where a separate
    ranker made them, else by the judge's win rates), in TRL's ``prompt`` / ``chosen`` /
    ``rejected`` columns plus ours: win rates, soft label (``target``), type, margin, whether
    each side ended by itself."""
    rows = []
    for r in judged:
        ranking = r.get("rank_scores") or r["scores"]
        for p in select_pairs(ranking, r["has_gold"], rule, r["degenerate"], r["candidates"]):
            i, j = p["chosen"], p["rejected"]
            rows.append({"prompt": r["prompt"], "chosen": r["candidates"][i], "rejected": r["candidates"][j],
                         "chosen_score": p["chosen_score"], "rejected_score": p["rejected_score"],
                         "target": p["label"], "type": p["type"], "margin": p["margin"],
                         "auto_negative": p["auto_negative"], "chosen_finished": r["finished"][i],
                         "rejected_finished": r["finished"][j], "iteration": t})
    return rows
