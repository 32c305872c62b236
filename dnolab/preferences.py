"""Preference matrices P[i, j] = P(i ≻ j): validation and the small generators notebook 01 needs.

A preference matrix is the object the whole series works with: square, entries in [0, 1],
P + Pᵀ = 1 (so the diagonal is 1/2). Nothing here assumes transitivity.
Introduced in notebooks/01_bradley_terry_limits.
"""

from __future__ import annotations

import numpy as np


class PreferenceMatrixError(ValueError):
    """A matrix that is not a valid preference matrix; the message names the problem and the fix."""


def validate_preference_matrix(P, atol: float = 1e-8, name: str = "P") -> np.ndarray:
    """Return ``P`` as a float array after checking it is a preference matrix.

    Checks, in order: 2-D, square, at least two responses, finite, inside [0, 1], and
    P + Pᵀ = 1 within ``atol``. Each failure raises :class:`PreferenceMatrixError` saying which.
    """
    try:
        P = np.asarray(P, dtype=float)
    except (TypeError, ValueError) as err:
        raise PreferenceMatrixError(f"{name} must be a numeric 2-D array: {err}") from None
    if P.ndim != 2:
        raise PreferenceMatrixError(
            f"{name} must be a 2-D (n x n) matrix, got an array with shape {P.shape}"
        )
    n, m = P.shape
    if n != m:
        raise PreferenceMatrixError(
            f"{name} must be square (P[i, j] = P(i ≻ j) over the same n responses), got shape {P.shape}"
        )
    if n < 2:
        raise PreferenceMatrixError(f"{name} needs at least 2 responses, got {n}")
    bad = ~np.isfinite(P)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise PreferenceMatrixError(
            f"{name} has {int(bad.sum())} non-finite entries (NaN or inf), first at [{i}, {j}]; "
            "fill every pair with a probability"
        )
    if (P < -atol).any() or (P > 1 + atol).any():
        i, j = np.argwhere((P < -atol) | (P > 1 + atol))[0]
        raise PreferenceMatrixError(
            f"{name} entries must be probabilities in [0, 1]; {name}[{i}, {j}] = {P[i, j]:.6g}"
        )
    gap = np.abs(P + P.T - 1.0)
    if gap.max() > atol:
        i, j = np.unravel_index(np.argmax(gap), gap.shape)
        raise PreferenceMatrixError(
            f"{name} must satisfy P + Pᵀ = 1 (P(i ≻ j) + P(j ≻ i) = 1, diagonal 1/2); "
            f"P[{i}, {j}] + P[{j}, {i}] = {P[i, j] + P[j, i]:.6g}. "
            "Build it from a skew-symmetric score as 0.5 + (A - A.T) / 2, or use from_win_counts()"
        )
    return np.clip(P, 0.0, 1.0)


def from_skew(A) -> np.ndarray:
    """P = 1/2 + A for a skew-symmetric A with entries in [-1/2, 1/2]."""
    A = np.asarray(A, dtype=float)
    return validate_preference_matrix(0.5 + A, name="1/2 + A")


def from_win_counts(wins) -> np.ndarray:
    """Empirical P from counts ``wins[i, j]`` (times i beat j); unseen pairs get 1/2."""
    W = np.asarray(wins, dtype=float)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise PreferenceMatrixError(f"wins must be a square matrix, got shape {W.shape}")
    if not np.isfinite(W).all() or (W < 0).any():
        raise PreferenceMatrixError("wins must hold non-negative finite counts")
    total = W + W.T
    with np.errstate(invalid="ignore", divide="ignore"):
        P = np.where(total > 0, W / np.where(total > 0, total, 1.0), 0.5)
    np.fill_diagonal(P, 0.5)
    return P


def rock_paper_scissors() -> np.ndarray:
    """Rock ≻ scissors ≻ paper ≻ rock, each with certainty: the smallest intransitive preference."""
    return np.array([[0.5, 0.0, 1.0],
                     [1.0, 0.5, 0.0],
                     [0.0, 1.0, 0.5]])


def bradley_terry_matrix(scores) -> np.ndarray:
    """P[i, j] = σ(s_i − s_j): the Bradley–Terry preference of scalar scores (always transitive)."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1 or s.size < 2:
        raise ValueError(f"scores must be a 1-D array of at least 2 values, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    D = s[:, None] - s[None, :]
    return 0.5 * (1.0 + np.tanh(D / 2.0))  # = σ(D), exactly skew-symmetric around 1/2


def bt_mixture_matrix(n: int, weights=(0.4, 0.35, 0.25), scale: float = 10.0,
                      rng: np.random.Generator | int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Average the preferences of several Bradley–Terry annotators who rank n responses differently.

    Each annotator k has scores ``scale * z_k`` with z_k ~ N(0, I). Every annotator is
    transitive; their weighted average need not be (a Condorcet cycle in probabilities).
    Returns ``(P, scores)`` with ``scores`` of shape (k, n).
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size < 1 or (w < 0).any() or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights!r}")
    rng = np.random.default_rng(rng)
    scores = scale * rng.standard_normal((w.size, n))
    P = sum(wk * bradley_terry_matrix(sk) for wk, sk in zip(w, scores, strict=True))
    return validate_preference_matrix(P), scores


def win_rates(P, pi) -> np.ndarray:
    """r_π(y) = P(y ≻ π) = (Pπ)_y: each response's expected win rate against a policy π."""
    P = validate_preference_matrix(P)
    pi = np.asarray(pi, dtype=float)
    if pi.shape != (P.shape[0],):
        raise ValueError(f"policy must have shape ({P.shape[0]},), got {pi.shape}")
    return P @ pi


def policy_preference(P, pi, rho) -> float:
    """P(π ≻ ρ) = πᵀ P ρ: the probability that a draw from π beats a draw from ρ."""
    P = validate_preference_matrix(P)
    return float(np.asarray(pi) @ P @ np.asarray(rho))


def dice_matrix(faces) -> np.ndarray:
    """P[i, j] = P(die i rolls higher than die j) + ½·P(tie), computed exactly from the faces."""
    dice = [np.asarray(f, dtype=float) for f in faces]
    if len(dice) < 2 or any(d.ndim != 1 or d.size == 0 for d in dice):
        raise ValueError("faces must be a list of at least two non-empty 1-D face lists")
    n = len(dice)
    P = np.full((n, n), 0.5)
    for i in range(n):
        for j in range(n):
            if i != j:
                diff = dice[i][:, None] - dice[j][None, :]
                P[i, j] = (diff > 0).mean() + 0.5 * (diff == 0).mean()
    return validate_preference_matrix(P)


def efron_dice() -> np.ndarray:
    """Efron's non-transitive dice A=444400, B=333333, C=662222, D=555111: each beats the next
    with probability exactly 2/3 (A ≻ B ≻ C ≻ D ≻ A)."""
    return dice_matrix([[4, 4, 4, 4, 0, 0], [3] * 6, [6, 6, 2, 2, 2, 2], [5, 5, 5, 1, 1, 1]])


def voting_profile_matrix(rankings, counts=None, rule: str = "average") -> np.ndarray:
    """Aggregate voters' strict rankings into a preference matrix.

    ``rankings`` is a list of rankings, each a permutation of 0..n-1 listed best first, and
    ``counts[k]`` voters hold ranking k. ``rule="average"``: P[i, j] = share of voters who
    rank i above j (its Nash equilibrium is the maximal lottery). ``rule="majority"``:
    1 if a strict majority ranks i above j, 0 if a strict minority does, 1/2 on a tie.
    """
    rankings = [list(r) for r in rankings]
    if not rankings:
        raise ValueError("rankings is empty: give at least one ranking")
    n = len(rankings[0])
    for r in rankings:
        if sorted(r) != list(range(n)):
            raise ValueError(f"each ranking must be a permutation of 0..{n - 1}, got {r}")
    counts = np.ones(len(rankings)) if counts is None else np.asarray(counts, dtype=float)
    if counts.shape != (len(rankings),) or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError("counts must hold one non-negative count per ranking, not all zero")
    above = np.zeros((n, n))
    for r, c in zip(rankings, counts, strict=True):
        position = np.empty(n, dtype=int)
        position[r] = np.arange(n)
        above += c * (position[:, None] < position[None, :])
    share = above / counts.sum()
    np.fill_diagonal(share, 0.5)
    if rule == "average":
        return validate_preference_matrix(share)
    if rule == "majority":
        P = np.where(share > 0.5, 1.0, np.where(share < 0.5, 0.0, 0.5))
        np.fill_diagonal(P, 0.5)
        return validate_preference_matrix(P)
    raise ValueError(f"rule must be 'average' or 'majority', got {rule!r}")
