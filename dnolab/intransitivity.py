"""How intransitive is a preference matrix? Cyclic triples, cycles, and the HodgeRank split.

Three measures, each answering a different question:

* **cyclic triples**: the share of triples {i, j, k} whose majority relation (i → j when
  P[i, j] > 1/2) is a directed 3-cycle. Counts *whether* cycles exist, not how strong they are.
* **HodgeRank split**: A = P − 1/2 is a skew-symmetric flow on the complete graph. Least squares
  splits it into a gradient part s_i − s_j (a ranking) and an orthogonal cyclic part (Jiang,
  Lim, Yao & Ye, "Statistical ranking and combinatorial Hodge theory", Math. Program. 2011;
  Balduzzi et al., "Re-evaluating evaluation", NeurIPS 2018, for games). The cyclic share of
  the energy ‖A‖² says how much of the preference no ranking can express.
* **BT fit error**: how far the best Bradley–Terry model is from P; see
  :func:`dnolab.bradley_terry.bt_fit_error`.

Introduced in notebooks/02_intransitive_preferences, where the cyclic-triple count and the
HodgeRank least squares are first written out inline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from math import comb

import numpy as np
from scipy.special import logit

from .preferences import PreferenceMatrixError, validate_preference_matrix


def majority_relation(P, tol: float = 1e-9) -> np.ndarray:
    """Boolean matrix M with M[i, j] True when i beats j by majority: P[i, j] > 1/2 + ``tol``.

    Pairs within ``tol`` of 1/2 are ties and have no edge either way.
    """
    P = validate_preference_matrix(P)
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    return P > 0.5 + tol


def count_cyclic_triples(P, tol: float = 1e-9) -> int:
    """Number of triples {i, j, k} whose majority relation is a directed 3-cycle.

    Vectorised: a directed 3-cycle is a closed walk of length 3 and the relation has no 2-cycles,
    so the count is trace(M³)/3 (each cycle is walked from each of its 3 vertices). A triple
    with a tie is never cyclic.
    """
    M = majority_relation(P, tol).astype(np.int64)
    return int(np.trace(M @ M @ M)) // 3


def cyclic_triple_share(P, tol: float = 1e-9) -> float:
    """Cyclic triples as a share of all C(n, 3) triples (0 when n < 3)."""
    n = np.asarray(P).shape[0]
    total = comb(n, 3)
    count = count_cyclic_triples(P, tol)
    return count / total if total else 0.0


def find_cycle(P, tol: float = 1e-9) -> list[int] | None:
    """A shortest directed cycle of the majority relation, as [i, j, …] (i → j → … → i).

    Returns None when the relation has no cycle (it is then consistent with a ranking). Breadth-
    first search from every vertex; ties in length go to the cycle through the lowest index.
    """
    M = majority_relation(P, tol)
    n = M.shape[0]
    best: list[int] | None = None
    for start in range(n):
        parent = {start: -1}
        queue = deque([start])
        found = None
        while queue and found is None:
            u = queue.popleft()
            for v in np.flatnonzero(M[u]):
                v = int(v)
                if v == start:
                    found = u
                    break
                if v not in parent:
                    parent[v] = u
                    queue.append(v)
        if found is None:
            continue
        path = [found]
        while path[-1] != start:
            path.append(parent[path[-1]])
        cycle = path[::-1]
        if best is None or len(cycle) < len(best):
            best = cycle
    return best


@dataclass(frozen=True)
class HodgeSplit:
    """A = gradient + cyclic, with gradient[i, j] = scores[i] − scores[j] (HodgeRank)."""

    flow: np.ndarray  # the skew-symmetric flow A that was split
    scores: np.ndarray  # potential s (mean zero): the best ranking in least squares
    gradient: np.ndarray  # s_i − s_j on the edges of the comparison graph
    cyclic: np.ndarray  # A − gradient: curl (plus harmonic part on incomplete graphs)
    energy: float  # Σ_{i<j} w_ij A_ij²
    gradient_energy: float
    cyclic_energy: float

    @property
    def cyclic_share(self) -> float:
        """Share of the flow's energy that no ranking explains (0 for a pure ranking, 1 for RPS)."""
        return self.cyclic_energy / self.energy if self.energy > 0 else 0.0


def preference_flow(P, flow: str = "probability", eps: float = 1e-6) -> np.ndarray:
    """The skew-symmetric flow HodgeRank splits.

    ``flow="probability"``: A = P − 1/2 (the margin, what the issue and the game use).
    ``flow="logit"``: A = logit(P), with P clipped to [eps, 1 − eps]; a Bradley–Terry matrix is
    then *exactly* a gradient (logit σ(s_i − s_j) = s_i − s_j).
    """
    P = validate_preference_matrix(P)
    if flow == "probability":
        A = P - 0.5
    elif flow == "logit":
        if not 0 < eps < 0.5:
            raise ValueError(f"eps must be in (0, 1/2), got {eps}")
        A = logit(np.clip(P, eps, 1 - eps))
    else:
        raise ValueError(f"flow must be 'probability' or 'logit', got {flow!r}")
    A = 0.5 * (A - A.T)  # remove rounding asymmetry; exact for a valid P
    np.fill_diagonal(A, 0.0)
    return A


def hodge_decomposition(P, weights=None, flow: str = "probability") -> HodgeSplit:
    """Split the preference flow into a ranking part and a cyclic part by weighted least squares.

    HodgeRank (Jiang et al. 2011: the weighted least-squares ranking problem, i.e. the l2
    projection of the flow onto gradient flows): find scores s minimising Σ_{i<j} w_ij (s_i − s_j − A_ij)². The normal equations are L s = div A with the
    graph Laplacian L = diag(W 1) − W and divergence (div A)_i = Σ_j w_ij A_ij. The residual
    A − (s_i − s_j) is orthogonal to every gradient flow, so the energies add up:
    ‖A‖² = ‖gradient‖² + ‖cyclic‖² (all norms weighted by w over the pairs i < j).

    On the complete graph with equal weights L = nI − 11ᵀ and s_i = (1/n) Σ_j A_ij, the mean
    margin (Borda count); the cyclic part is then all curl (the complete graph has no harmonic
    flows). ``weights`` (symmetric, non-negative) restricts or reweights the pairs, e.g. to the
    pairs that were actually compared.
    """
    A = preference_flow(P, flow)
    n = A.shape[0]
    if weights is None:
        w = np.ones((n, n))
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (n, n) or not np.isfinite(w).all() or (w < 0).any():
            raise PreferenceMatrixError(
                f"weights must be a finite non-negative ({n}, {n}) matrix, got shape {w.shape}"
            )
        if not np.allclose(w, w.T):
            raise PreferenceMatrixError(
                "weights must be symmetric (w[i, j] weighs the pair {i, j}); pass (w + w.T) / 2"
            )
    w = w.copy()
    np.fill_diagonal(w, 0.0)
    L = np.diag(w.sum(axis=1)) - w
    div = (w * A).sum(axis=1)
    s = np.linalg.lstsq(L, div, rcond=None)[0]  # minimum-norm solution: mean zero per component
    s = s - s.mean()
    G = (s[:, None] - s[None, :]) * (w > 0)
    C = A - G
    iu = np.triu_indices(n, k=1)
    energy = float((w[iu] * A[iu] ** 2).sum())
    grad_energy = float((w[iu] * G[iu] ** 2).sum())
    cyc_energy = float((w[iu] * C[iu] ** 2).sum())
    return HodgeSplit(A, s, G, C, energy, grad_energy, cyc_energy)


def cyclic_energy_share(P, weights=None, flow: str = "probability") -> float:
    """Share of the energy of A = P − 1/2 in the cyclic part of its HodgeRank split."""
    return hodge_decomposition(P, weights, flow).cyclic_share


def bt_error(P, l2_fallback: float = 1e-8) -> dict:
    """:func:`dnolab.bradley_terry.bt_fit_error`, also when the best BT scores are infinite.

    If some responses never lose (e.g. a certain Condorcet winner, P = 1 against all), the
    maximum-likelihood BT scores diverge; the fitted *probabilities* still converge, and a tiny
    Gaussian prior ``l2_fallback`` gets within rounding of that limit. The result says which
    path was used under ``"l2"``.
    """
    from scipy.sparse.csgraph import connected_components

    from .bradley_terry import bt_fit_error

    P = validate_preference_matrix(P)
    n_parts, _ = connected_components(P > 0, directed=True, connection="strong")
    if n_parts == 1:
        return {**bt_fit_error(P), "l2": 0.0}
    return {**bt_fit_error(P, l2=l2_fallback), "l2": l2_fallback}


def intransitivity_summary(P) -> dict:
    """The numbers notebook 02's table reports for one preference matrix.

    Keys: ``n``; ``cyclic_triples`` and ``cyclic_triple_share`` (majority relation);
    ``cyclic_energy_share`` (HodgeRank on P − 1/2, complete graph, equal weights);
    ``bt_mae``, ``bt_max_error`` and ``bt_backwards_share`` of the best Bradley–Terry fit.
    """
    P = validate_preference_matrix(P)
    bt = bt_error(P)
    return {
        "n": P.shape[0],
        "cyclic_triples": count_cyclic_triples(P),
        "cyclic_triple_share": cyclic_triple_share(P),
        "cyclic_energy_share": cyclic_energy_share(P),
        "bt_mae": bt["mae"],
        "bt_max_error": bt["max_error"],
        "bt_backwards_share": bt["backwards_share"],
    }
