"""The symmetric constant-sum preference game: its Nash equilibrium and exploitability.

The game's payoff is P(π ≻ π') = πᵀPπ'; its value is 1/2 and its equilibrium policy is the
von Neumann (minimax) winner that DNO targets (paper eq. 3). Introduced in
notebooks/01_bradley_terry_limits; notebook 03 builds the dynamics on top.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from .preferences import validate_preference_matrix


def exploitability(P, pi) -> float:
    """expl(π) = max_y P(y ≻ π) − 1/2 ≥ 0: how much the best single response beats π by.

    Zero exactly at a Nash equilibrium; the duality gap of the profile (π, π) is twice this.
    """
    P = validate_preference_matrix(P)
    pi = _check_policy(pi, P.shape[0])
    return float((P @ pi).max() - 0.5)


def nash(P) -> tuple[np.ndarray, float]:
    """A Nash equilibrium policy of the preference game and the game value, by linear programming.

    Solves max_{π ∈ Δ} min_{y'} (Pᵀπ)_{y'} (paper eq. 3) with scipy's HiGHS: variables (π, v),
    maximise v subject to Pᵀπ ≥ v·1, Σπ = 1, π ≥ 0. The value is 1/2 for any valid P.
    """
    P = validate_preference_matrix(P)
    n = P.shape[0]
    c = np.zeros(n + 1)
    c[-1] = -1.0
    A_ub = np.hstack([-P.T, np.ones((n, 1))])
    A_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(n), A_eq=A_eq, b_eq=[1.0],
                  bounds=[(0, None)] * n + [(None, None)], method="highs")
    if res.status != 0:  # pragma: no cover - HiGHS always solves a bounded feasible LP
        raise RuntimeError(f"linear program failed: {res.message}")
    pi = np.clip(res.x[:n], 0.0, None)
    return pi / pi.sum(), float(res.x[-1])


def _check_policy(pi, n: int) -> np.ndarray:
    pi = np.asarray(pi, dtype=float)
    if pi.shape != (n,):
        raise ValueError(f"policy must be a vector of {n} probabilities, got shape {pi.shape}")
    if not np.isfinite(pi).all() or (pi < -1e-12).any() or abs(pi.sum() - 1.0) > 1e-6:
        raise ValueError(f"policy must be non-negative and sum to 1 (sum is {pi.sum():.6g})")
    return pi
