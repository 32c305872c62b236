"""From judged candidates to training pairs: DNO-Prct's large-margin rule, Algorithm 1's soft
labels, pair types and replay of earlier iterations' pairs.

Candidates of a prompt are the K student samples plus (optionally) the gold answer, which is
always the last candidate. Each candidate has a score: the judge's own (listwise rubric
points) or its mean win rate against the other candidates, the estimate of
r_t(x, y) = E_{y'~π_t} P(y ≻ y' | x) in Algorithm 2, line 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEACHER_WINS, STUDENT_BEATS_TEACHER, STUDENT_BEATS_STUDENT = "T>S", "S>T", "S>S"
PAIR_TYPES = (TEACHER_WINS, STUDENT_BEATS_TEACHER, STUDENT_BEATS_STUDENT)


PAIR_MODES = ("margin", "soft", "best_worst", "spin", "gold")


@dataclass(frozen=True)
class PairRule:
    """Which (positive, negative) pairs to keep.

    ``mode="margin"`` (DNO-Prct, Algorithm 2 line 6): the positive must reach the top band —
    ``positive_min`` (absolute, the paper: rubric score ≥ 5) and/or within ``positive_band`` of
    the prompt's best score (the win-rate analogue) — and each negative must score at least
    ``margin_teacher`` lower when the positive is the gold answer (paper: 2 points) or
    ``margin_student`` lower when it is a student sample (paper: 1 point). At most
    ``max_pairs_per_prompt`` pairs, largest margins first.

    ``mode="soft"`` (Algorithm 1, eq. 8): every pair of candidates, with soft label
    σ(c·(r(y₁) − r(y₂))); c = ``soft_label_scale`` (1 is eq. 8 literally).
    ``mode="best_worst"`` (the iterative-DPO recipe, SPPO's pair): best vs worst candidate.
    ``mode="spin"`` (SPIN, Chen et al. 2024): the gold answer beats every student sample,
    whatever the judge says. ``mode="gold"``: the gold answer alone (continued SFT).
    ``allowed_types`` keeps only some pair types (DNO-Restrictive: ``("T>S",)``).

    ``deduplicate``: when samples repeat (a confident policy often draws the same answer K
    times), the same text pair would enter the data several times and weigh that prompt
    several-fold; with it on, each distinct (chosen, rejected) text pair counts once, the gold
    answer taking precedence over an identical student sample. The paper does not say.
    """

    mode: str = "margin"
    positive_min: float | None = None
    positive_band: float | None = 0.05
    margin_teacher: float = 0.2
    margin_student: float = 0.1
    max_pairs_per_prompt: int = 6
    soft_label_scale: float = 1.0
    allowed_types: tuple[str, ...] = PAIR_TYPES
    deduplicate: bool = True  # one pair per distinct (chosen text, rejected text)

    def __post_init__(self):
        if self.mode not in PAIR_MODES:
            raise ValueError(f"pairs.mode must be one of {PAIR_MODES}, got {self.mode!r}")
        if self.max_pairs_per_prompt < 1:
            raise ValueError("pairs.max_pairs_per_prompt must be >= 1")
        if self.margin_teacher < 0 or self.margin_student < 0:
            raise ValueError("pairs margins must be >= 0")
        unknown = set(self.allowed_types) - set(PAIR_TYPES)
        if unknown:
            raise ValueError(f"unknown pair types {sorted(unknown)}; use {PAIR_TYPES}")


def pair_type(pos_is_gold: bool, neg_is_gold: bool) -> str:
    if pos_is_gold:
        return TEACHER_WINS
    return STUDENT_BEATS_TEACHER if neg_is_gold else STUDENT_BEATS_STUDENT


def select_pairs(scores, has_gold: bool, rule: PairRule, degenerate=None, texts=None) -> list[dict]:
    """Pairs of one prompt as dicts (chosen/rejected candidate indices, scores, soft label, type).

    ``degenerate[i]`` marks automatic negatives (repeated n-grams): never chosen, and always
    far enough below any positive. NaN scores (invalid judgments) are left out. ``texts``
    (the candidates) lets ``rule.deduplicate`` drop repeated text pairs.
    """
    s = np.asarray(scores, dtype=float)
    n = len(s)
    gold = n - 1 if has_gold else None
    bad = np.zeros(n, bool) if degenerate is None else np.asarray(degenerate, bool)
    valid = ~np.isnan(s)
    pairs = []
    seen: set[tuple[str, str]] = set()
    if texts is not None and rule.deduplicate and gold is not None:
        # an identical student sample defers to the gold answer
        valid &= ~np.array([i != gold and texts[i] == texts[gold] for i in range(n)])

    def add(i, j, label, margin):
        if texts is not None and rule.deduplicate:
            key = (texts[i], texts[j])
            if key in seen:
                return
            seen.add(key)
        kind = pair_type(i == gold, j == gold)
        if kind in rule.allowed_types:
            pairs.append({"chosen": int(i), "rejected": int(j), "chosen_score": float(s[i]),
                          "rejected_score": float(s[j]) if not np.isnan(s[j]) else float("nan"),
                          "label": float(label), "margin": float(margin), "type": kind})

    if rule.mode in {"spin", "gold"}:
        if gold is None:
            raise ValueError(f"pairs.mode {rule.mode!r} needs the gold answer among the candidates")
        if rule.mode == "gold":
            add(gold, gold, 1.0, 0.0)
        else:
            for j in range(n - 1):
                if texts is None or texts[j] != texts[gold]:
                    add(gold, j, 1.0, float(s[gold] - s[j]) if valid[gold] and valid[j] else 0.0)
        return pairs

    if rule.mode == "soft":
        for i in range(n):
            for j in range(i + 1, n):
                if valid[i] and valid[j] and not (bad[i] or bad[j]):
                    add(i, j, 1.0 / (1.0 + np.exp(-rule.soft_label_scale * (s[i] - s[j]))), abs(s[i] - s[j]))
        return pairs

    ok = valid & ~bad
    if not ok.any():
        return pairs
    if rule.mode == "best_worst":  # iterative-DPO recipe: best vs worst candidate
        order = np.flatnonzero(ok)
        i = order[np.argmax(s[order])]
        j = order[np.argmin(s[order])] if not bad.any() else np.flatnonzero(bad)[0]
        if i != j and (bad[j] or s[i] > s[j]):
            add(i, j, 1.0, (s[i] - s[j]) if not bad[j] else np.inf)
        return pairs

    best = s[ok].max()
    candidates = []
    for i in np.flatnonzero(ok):
        if rule.positive_min is not None and s[i] < rule.positive_min:
            continue
        if rule.positive_band is not None and s[i] < best - rule.positive_band:
            continue
        need = rule.margin_teacher if i == gold else rule.margin_student
        for j in range(n):
            if j == i:
                continue
            if bad[j]:
                candidates.append((np.inf, i, j))
            elif valid[j] and s[i] - s[j] >= need - 1e-12:
                candidates.append((s[i] - s[j], i, j))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    for margin, i, j in candidates[: rule.max_pairs_per_prompt]:
        add(i, j, 1.0, margin)
    return pairs


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
