"""Bradley–Terry: fit scalar scores to pairwise comparisons by maximum likelihood.

The model P(i ≻ j) = σ(s_i − s_j) is what a reward model assumes. Introduced in
notebooks/01_bradley_terry_limits, where its log-likelihood is written out inline first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit

from .preferences import bradley_terry_matrix, validate_preference_matrix


@dataclass(frozen=True)
class BTFit:
    """Fitted scores (mean zero) and the negative log-likelihood they reach."""

    scores: np.ndarray
    nll: float
    n_comparisons: float

    def predict(self, i, j) -> np.ndarray:
        """P(i ≻ j) under the fit; ``i`` and ``j`` may be index arrays."""
        return expit(self.scores[np.asarray(i)] - self.scores[np.asarray(j)])

    def matrix(self) -> np.ndarray:
        """The full fitted preference matrix σ(s_i − s_j)."""
        return bradley_terry_matrix(self.scores)


def comparisons_to_wins(winners, losers, n: int) -> np.ndarray:
    """Count matrix ``W[i, j]`` = number of comparisons in which i beat j."""
    winners = np.asarray(winners, dtype=int)
    losers = np.asarray(losers, dtype=int)
    if winners.shape != losers.shape or winners.ndim != 1:
        raise ValueError(
            f"winners and losers must be 1-D arrays of equal length, got {winners.shape} and {losers.shape}"
        )
    for label, idx in (("winners", winners), ("losers", losers)):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{label} must be indices in [0, {n}), got values {idx.min()}..{idx.max()}")
    if (winners == losers).any():
        raise ValueError("a comparison needs two different responses; found winner == loser")
    W = np.zeros((n, n))
    np.add.at(W, (winners, losers), 1.0)
    return W


def sample_comparisons(P, n_comparisons: int, rng: np.random.Generator,
                       pair_probs=None) -> np.ndarray:
    """Draw labelled comparisons from a preference matrix and return the win-count matrix.

    Pairs (i, j), i ≠ j, are drawn uniformly or from ``pair_probs`` (an n×n matrix of pair
    probabilities, e.g. π πᵀ for comparisons of a policy's own responses); the winner is i
    with probability P[i, j].
    """
    P = validate_preference_matrix(P)
    n = P.shape[0]
    if pair_probs is None:
        w = np.ones((n, n))
    else:
        w = np.asarray(pair_probs, dtype=float)
        if w.shape != (n, n) or (w < 0).any() or not np.isfinite(w).all():
            raise ValueError(f"pair_probs must be a non-negative ({n}, {n}) matrix")
    w = w.copy()
    np.fill_diagonal(w, 0.0)
    if w.sum() <= 0:
        raise ValueError("pair_probs puts no mass on pairs of different responses")
    flat = rng.choice(n * n, size=n_comparisons, p=(w / w.sum()).ravel())
    i, j = np.divmod(flat, n)
    i_wins = rng.random(n_comparisons) < P[i, j]
    return comparisons_to_wins(np.where(i_wins, i, j), np.where(i_wins, j, i), n)


def bt_negative_log_likelihood(scores, wins) -> float:
    """−Σ_ij W_ij log σ(s_i − s_j): the loss a reward model minimises on comparison data."""
    s = np.asarray(scores, dtype=float)
    return float(-(np.asarray(wins) * log_expit(s[:, None] - s[None, :])).sum())


def fit_bradley_terry(wins, l2: float = 0.0) -> BTFit:
    """Maximum-likelihood Bradley–Terry scores from a win-count (or weight) matrix.

    ``wins[i, j]`` may be fractional, e.g. ``weights * P`` to fit the best BT approximation of
    a whole preference matrix in KL. ``l2 > 0`` adds (l2/2)·‖s‖², a Gaussian prior that keeps
    scores finite when some response never loses. Scores are returned with mean zero (BT is
    invariant to a common shift).
    """
    W = np.asarray(wins, dtype=float)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"wins must be a square (n x n) matrix, got shape {W.shape}")
    if W.shape[0] < 2:
        raise ValueError("wins must cover at least 2 responses")
    if not np.isfinite(W).all() or (W < 0).any():
        raise ValueError("wins must hold non-negative finite counts or weights")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    W = W.copy()
    np.fill_diagonal(W, 0.0)
    n = W.shape[0]
    if W.sum() == 0:
        raise ValueError("wins holds no comparisons")
    if l2 == 0:
        n_parts, _ = connected_components(W > 0, directed=True, connection="strong")
        if n_parts > 1:
            raise ValueError(
                "the maximum-likelihood scores are infinite: some responses never lose to the rest "
                f"(the 'i beat j' graph splits into {n_parts} strongly connected parts). "
                "Pass l2 > 0 (e.g. 1e-2) for a prior, or collect more comparisons"
            )

    def objective(s):
        D = s[:, None] - s[None, :]
        nll = -(W * log_expit(D)).sum() + 0.5 * l2 * s @ s
        G = W * expit(-D)  # d(−log σ(D_ij))/dD_ij = −σ(−D_ij)
        grad = -G.sum(axis=1) + G.sum(axis=0) + l2 * s
        return nll, grad

    res = minimize(objective, np.zeros(n), jac=True, method="L-BFGS-B",
                   options={"maxiter": 10_000, "gtol": 1e-10, "ftol": 1e-15})
    s = res.x - res.x.mean()
    return BTFit(scores=s, nll=float(objective(s)[0]), n_comparisons=float(W.sum()))


def fit_bradley_terry_to_matrix(P, weights=None, l2: float = 0.0) -> BTFit:
    """The best Bradley–Terry approximation of a preference matrix (weighted KL projection).

    ``weights[i, j]`` says how much pair (i, j) counts (default: all pairs equally, the
    infinite-data limit of uniform comparisons).
    """
    P = validate_preference_matrix(P)
    n = P.shape[0]
    w = np.ones((n, n)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n, n) or (w < 0).any():
        raise ValueError(f"weights must be a non-negative ({n}, {n}) matrix")
    w = 0.5 * (w + w.T)
    return fit_bradley_terry(w * P, l2=l2)


def bt_fit_error(P, weights=None, l2: float = 0.0) -> dict:
    """How well the best BT fit reproduces P, over the pairs i < j.

    Returns the mean and max absolute error, the share of decided pairs (P ≠ 1/2) whose
    direction the fit gets strictly backwards, the share it calls a tie (1/2), the fitted
    scores and the fitted matrix. ``l2`` > 0 adds a Gaussian prior (needed when some
    response never loses and the maximum-likelihood scores are infinite).
    """
    P = validate_preference_matrix(P)
    fit = fit_bradley_terry_to_matrix(P, weights, l2=l2)
    Q = fit.matrix()
    iu = np.triu_indices(P.shape[0], k=1)
    p, q = P[iu] - 0.5, Q[iu] - 0.5
    decided = np.abs(p) > 1e-9
    n_decided = max(int(decided.sum()), 1)
    return {
        "mae": float(np.abs(p - q).mean()),
        "max_error": float(np.abs(p - q).max()),
        "backwards_share": float(((p * q < 0) & decided).sum() / n_decided),
        "tied_share": float(((np.abs(q) < 1e-6) & decided).sum() / n_decided),
        "scores": fit.scores,
        "matrix": Q,
    }
