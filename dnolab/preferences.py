"""Preference matrices P[i, j] = P(i ≻ j): validation and generators, transitive or not.

A preference matrix is the object the whole series works with: square, entries in [0, 1],
P + Pᵀ = 1 (so the diagonal is 1/2). Nothing here assumes transitivity.
Introduced in notebooks/01_bradley_terry_limits; the sources of cycles (annotator panels,
voting profiles, dice, a two-criteria judge, blade-chest) in notebooks/02_intransitive_preferences.
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
                      rng: np.random.Generator | int | None = 0,
                      rule: str = "average") -> tuple[np.ndarray, np.ndarray]:
    """Average the preferences of several Bradley–Terry annotators who rank n responses differently.

    Each annotator k has scores ``scale * z_k`` with z_k ~ N(0, I). Every annotator is
    transitive; their weighted average need not be (a Condorcet cycle in probabilities).
    Returns ``(P, scores)`` with ``scores`` of shape (k, n). ``rule="majority"`` aggregates the
    same annotators by weighted majority vote instead (see :func:`bt_annotators_matrix`).
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size < 1 or (w < 0).any() or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights!r}")
    rng = np.random.default_rng(rng)
    if rule not in ("average", "majority"):
        raise ValueError(f"rule must be 'average' or 'majority', got {rule!r}")
    scores = scale * rng.standard_normal((w.size, n))
    if rule == "majority":
        return bt_annotators_matrix(scores, w, rule="majority"), scores
    P = sum(wk * bradley_terry_matrix(sk) for wk, sk in zip(w, scores, strict=True))
    return validate_preference_matrix(P), scores


PANEL_SEED = 13  # the series' 3-annotator panel: 83 cyclic triples, Nash support of 5 responses


def annotator_panel_game(n: int = 20, seed: int = PANEL_SEED,
                         rule: str = "average") -> tuple[np.ndarray, np.ndarray]:
    """The series' "20 responses, 3 annotators" preference game, the same in every notebook.

    Three decisive Bradley–Terry annotators (weights 0.4 / 0.35 / 0.25, score scale 10) who
    each rank the ``n`` responses consistently but differently, pooled by ``rule``
    ("average": the preference a reward model is trained on; "majority": the panel's
    verdict). With the default seed the average has 83 cyclic triples of 1140 and a Nash
    equilibrium on 5 responses. Returns ``(P, scores)`` as :func:`bt_mixture_matrix` does.
    """
    return bt_mixture_matrix(n, weights=(0.4, 0.35, 0.25), scale=10.0, rng=seed, rule=rule)


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


# ---------------------------------------------------------------------------------------------
# Sources of intransitive preferences (notebooks/02_intransitive_preferences).
# Each generator returns a matrix that has passed validate_preference_matrix.
# ---------------------------------------------------------------------------------------------

CONDORCET_RANKINGS = ([0, 1, 2], [1, 2, 0], [2, 0, 1])


def bt_annotators_matrix(scores, weights=None, rule: str = "average") -> np.ndarray:
    """Aggregate a panel of Bradley–Terry annotators whose scores are known.

    ``scores[k]`` holds annotator k's scores of the n responses (shape (k, n)); ``weights[k]``
    is the share of the panel annotator k represents (default: equal). Two ways to aggregate:

    * ``rule="average"``: P[i, j] = Σ_k w_k σ(s_ki − s_kj), the probability that a randomly
      drawn annotator prefers i (what pooling everyone's labels estimates);
    * ``rule="majority"``: every annotator votes for the response it scores higher (half a
      vote each on equal scores); P[i, j] is 1 if more than half the weight votes i, 0 if less,
      1/2 on an exact tie. This is the pairwise-majority (Condorcet) relation of the panel.

    Every annotator is transitive; the aggregate need not be (Condorcet 1785).
    """
    S = np.asarray(scores, dtype=float)
    if S.ndim != 2 or S.shape[1] < 2:
        raise ValueError(f"scores must have shape (annotators, responses) with >= 2 responses, got {S.shape}")
    if not np.isfinite(S).all():
        raise ValueError("scores must be finite")
    w = np.full(S.shape[0], 1.0 / S.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (S.shape[0],) or (w < 0).any() or not np.isclose(w.sum(), 1.0):
        raise ValueError(
            f"weights must hold one non-negative weight per annotator ({S.shape[0]}) and sum to 1, "
            f"got {weights!r}"
        )
    if rule == "average":
        P = sum(wk * bradley_terry_matrix(sk) for wk, sk in zip(w, S, strict=True))
        return validate_preference_matrix(P)
    if rule == "majority":
        D = S[:, :, None] - S[:, None, :]
        votes = np.einsum("k,kij->ij", w, (D > 0) + 0.5 * (D == 0))
        P = np.where(votes > 0.5 + 1e-12, 1.0, np.where(votes < 0.5 - 1e-12, 0.0, 0.5))
        np.fill_diagonal(P, 0.5)
        return validate_preference_matrix(P)
    raise ValueError(f"rule must be 'average' or 'majority', got {rule!r}")


def condorcet_profile(rule: str = "average") -> np.ndarray:
    """Three voters ranking a ≻ b ≻ c, b ≻ c ≻ a and c ≻ a ≻ b (Condorcet's paradox).

    Averaged: P(a ≻ b) = P(b ≻ c) = P(c ≻ a) = 2/3; by majority the cycle is certain.
    """
    return voting_profile_matrix(CONDORCET_RANKINGS, rule=rule)


def five_voter_profile(rule: str = "average") -> np.ndarray:
    """Two voters a ≻ b ≻ c, two b ≻ c ≻ a, one c ≻ a ≻ b.

    Averaged: P(a ≻ b) = 3/5, P(b ≻ c) = 4/5, P(c ≻ a) = 3/5; the maximal lottery (Nash
    equilibrium of the margin game, Fishburn 1984) is (0.6, 0.2, 0.2).
    """
    return voting_profile_matrix(CONDORCET_RANKINGS, counts=[2, 2, 1], rule=rule)


def length_quality_matrix(lengths, quality, threshold: float = 150.0) -> np.ndarray:
    """A two-criteria judge: prefer the clearly longer response, otherwise the better one.

    If |length_i − length_j| ≥ ``threshold`` the longer response wins; otherwise the one with
    higher ``quality`` wins (equal quality: 1/2). Each criterion alone is transitive; the rule
    that switches between them is not. With lengths (300, 100, 200), quality B > C > A and
    threshold 150 it gives A ≻ B, B ≻ C, C ≻ A (reference note §3, our own construction).
    """
    L = np.asarray(lengths, dtype=float)
    Q = np.asarray(quality, dtype=float)
    if L.ndim != 1 or L.shape != Q.shape or L.size < 2:
        raise ValueError(
            f"lengths and quality must be 1-D arrays of the same length >= 2, got {L.shape} and {Q.shape}"
        )
    if not (np.isfinite(L).all() and np.isfinite(Q).all()):
        raise ValueError("lengths and quality must be finite")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    dL = L[:, None] - L[None, :]
    dQ = Q[:, None] - Q[None, :]
    by_quality = 0.5 + 0.5 * np.sign(dQ)
    P = np.where(np.abs(dL) >= threshold, 0.5 + 0.5 * np.sign(dL), by_quality)
    np.fill_diagonal(P, 0.5)
    return validate_preference_matrix(P)


def random_length_quality(n: int, threshold: float = 150.0, length_range=(50.0, 450.0),
                          rng: np.random.Generator | int | None = 0):
    """The length-versus-quality judge on n random responses.

    Lengths are uniform on ``length_range`` and qualities standard normal, drawn independently.
    Returns ``(P, lengths, quality)``.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    lo, hi = length_range
    if not hi > lo:
        raise ValueError(f"length_range must be (low, high) with high > low, got {length_range!r}")
    rng = np.random.default_rng(rng)
    lengths = rng.uniform(lo, hi, n)
    quality = rng.standard_normal(n)
    return length_quality_matrix(lengths, quality, threshold), lengths, quality


def blade_chest_matrix(blades, chests, model: str = "inner") -> np.ndarray:
    """P(a ≻ b) = σ(M(a, b)) under the blade-chest model (Chen & Joachims, WSDM 2016).

    Every response a has a "blade" vector b_a (how it attacks) and a "chest" vector c_a (how it
    defends). ``model="inner"``: M(a, b) = b_a·c_b − b_b·c_a. ``model="dist"``:
    M(a, b) = ‖b_b − c_a‖² − ‖b_a − c_b‖². Both are skew-symmetric, so P + Pᵀ = 1, and
    neither needs a cycle-free order.
    """
    B = np.asarray(blades, dtype=float)
    C = np.asarray(chests, dtype=float)
    if B.ndim != 2 or B.shape != C.shape or B.shape[0] < 2:
        raise ValueError(
            f"blades and chests must both have shape (n, d) with n >= 2, got {B.shape} and {C.shape}"
        )
    if not (np.isfinite(B).all() and np.isfinite(C).all()):
        raise ValueError("blades and chests must be finite")
    if model == "inner":
        G = B @ C.T  # G[a, b] = b_a · c_b
        M = G - G.T
    elif model == "dist":
        D = ((B[None, :, :] - C[:, None, :]) ** 2).sum(-1)  # D[a, b] = ‖b_b − c_a‖²
        M = D - D.T
    else:
        raise ValueError(f"model must be 'inner' or 'dist', got {model!r}")
    P = 0.5 * (1.0 + np.tanh(M / 2.0))  # σ(M), exactly P + Pᵀ = 1
    return validate_preference_matrix(P)


def random_blade_chest(n: int, dim: int = 2, scale: float = 2.0, model: str = "inner",
                       rng: np.random.Generator | int | None = 0):
    """Blade-chest preferences of n responses with Gaussian blades and chests (N(0, scale²)).

    Returns ``(P, blades, chests)``.
    """
    if n < 2 or dim < 1:
        raise ValueError(f"need n >= 2 and dim >= 1, got n={n}, dim={dim}")
    rng = np.random.default_rng(rng)
    blades = scale * rng.standard_normal((n, dim))
    chests = scale * rng.standard_normal((n, dim))
    return blade_chest_matrix(blades, chests, model), blades, chests


def cyclic_tournament(n: int, p_win: float = 0.9) -> np.ndarray:
    """Rock-paper-scissors on n responses (n odd): i beats the next (n − 1)/2 around a circle.

    P[i, j] = ``p_win`` if (j − i) mod n ∈ {1, …, (n−1)/2}, else 1 − ``p_win``. Every response
    wins exactly half its pairs, so every response has the same BT score and the best BT fit
    is P = 1/2 everywhere, while every pair has a clear winner.
    """
    if n < 3 or n % 2 == 0:
        raise ValueError(f"n must be odd and >= 3 (each response beats exactly half the rest), got {n}")
    if not 0.5 < p_win <= 1.0:
        raise ValueError(f"p_win must be in (1/2, 1], got {p_win}")
    offset = (np.arange(n)[None, :] - np.arange(n)[:, None]) % n
    P = np.where(offset == 0, 0.5, np.where(offset <= (n - 1) // 2, p_win, 1.0 - p_win))
    return validate_preference_matrix(P)
