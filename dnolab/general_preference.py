"""A general preference model that can represent cycles, fitted by maximum likelihood in torch.

Bradley–Terry gives every response one number; the skew-symmetric embedding model of GPM
(Zhang et al., "General Preference Modeling with Preference Representations for Aligning
Language Models", arXiv:2410.02197, ICML 2025) gives every response a vector v ∈ R^{2k} and
scores a pair with the skew-symmetric bilinear form

    s(i, j) = ⟨R v_i, v_j⟩,   R = blockdiag([[0, −1], [1, 0]] × k),   P(i ≻ j) = σ(s(i, j)).

Because R is skew-symmetric, s(i, j) = −s(j, i) and P + Pᵀ = 1 by construction. Each 2-D block
contributes v_i¹v_j² − v_i²v_j¹ (a signed area, the sine of the angle between the two
vectors times their lengths), which is what lets three vectors at 120° play rock-paper-
scissors. With k blocks the model represents every real skew-symmetric score matrix of rank
≤ 2k (real Schur form of a skew-symmetric matrix). Bradley–Terry is the rank-2 special case:
v_i = (1, −s_i) gives ⟨R v_i, v_j⟩ = s_i − s_j.

Differences from GPM as published: the embeddings here are free parameters per response
(no language model underneath), not normalised to unit length, and there is no temperature
or prompt-dependent block scale (the vector lengths play that role). They are fitted by
penalised maximum likelihood with L-BFGS in float64, deterministically given a seed.

Introduced in notebooks/02_intransitive_preferences, where the score is first written inline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .preferences import validate_preference_matrix


def skew_block_matrix(dim: int) -> np.ndarray:
    """R^≻ of GPM: block-diagonal with dim/2 blocks [[0, −1], [1, 0]] (R[i, i+1] = −1, R[i+1, i] = 1)."""
    if not isinstance(dim, (int, np.integer)) or dim < 2 or dim % 2:
        raise ValueError(f"embedding dim must be an even integer >= 2 (pairs of coordinates), got {dim!r}")
    R = np.zeros((dim, dim))
    for a in range(0, dim, 2):
        R[a, a + 1] = -1.0
        R[a + 1, a] = 1.0
    return R


def gpm_score_matrix(embeddings) -> np.ndarray:
    """S[i, j] = ⟨R v_i, v_j⟩ for the rows v_i of ``embeddings`` (shape (n, 2k)); S = −Sᵀ."""
    V = np.asarray(embeddings, dtype=float)
    if V.ndim != 2:
        raise ValueError(f"embeddings must have shape (n, dim), got {V.shape}")
    R = skew_block_matrix(V.shape[1])
    return (V @ R.T) @ V.T  # (R v_i)ᵀ v_j


def gpm_matrix(embeddings) -> np.ndarray:
    """P[i, j] = σ(⟨R v_i, v_j⟩): the preference matrix of a set of GPM embeddings."""
    S = gpm_score_matrix(embeddings)
    return validate_preference_matrix(0.5 * (1.0 + np.tanh(S / 2.0)), name="σ(⟨R v_i, v_j⟩)")


@dataclass(frozen=True)
class GPMFit:
    """Fitted embeddings, the penalised objective they reach and how the optimiser ended."""

    embeddings: np.ndarray
    nll: float  # −Σ_ij W_ij log σ(s_ij) at the fit (no penalty)
    objective: float  # (nll + l2/2 ‖V‖²) / Σ W
    n_comparisons: float
    n_iter: int

    def scores(self) -> np.ndarray:
        """The skew-symmetric score matrix S[i, j] = ⟨R v_i, v_j⟩."""
        return gpm_score_matrix(self.embeddings)

    def matrix(self) -> np.ndarray:
        """The fitted preference matrix σ(S)."""
        return gpm_matrix(self.embeddings)

    def predict(self, i, j) -> np.ndarray:
        """P(i ≻ j) under the fit; ``i`` and ``j`` may be index arrays."""
        return expit(self.scores()[np.asarray(i), np.asarray(j)])


def fit_general_preference(wins, dim: int = 4, l2: float = 1e-2, seed: int = 0,
                           init_scale: float = 0.1, max_iter: int = 2000,
                           tol: float = 1e-10) -> GPMFit:
    """Maximum-likelihood GPM embeddings from a win-count matrix ``wins[i, j]`` (i beat j).

    Minimises (−Σ_ij W_ij log σ(⟨R v_i, v_j⟩) + (l2/2)‖V‖²_F) / Σ W with torch's L-BFGS (strong
    Wolfe line search) in float64, from V ~ N(0, init_scale²) drawn with a torch generator seeded
    by ``seed`` (V = 0 is a saddle point, so the start must be random). ``wins`` may be
    fractional, e.g. ``P`` itself for the infinite-data fit of a whole matrix. The same
    penalty convention as :func:`dnolab.bradley_terry.fit_bradley_terry`: a Gaussian prior
    on the parameters, whose pull fades as the data grow.

    Torch's thread count is left to the caller (:func:`dnolab.utils.set_cpu_threads`); the
    result does not depend on it beyond rounding.
    """
    import torch

    W = np.asarray(wins, dtype=float)
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] < 2:
        raise ValueError(f"wins must be a square (n x n) matrix with n >= 2, got shape {W.shape}")
    if not np.isfinite(W).all() or (W < 0).any():
        raise ValueError("wins must hold non-negative finite counts or weights")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    if not init_scale > 0:
        raise ValueError(f"init_scale must be > 0, got {init_scale}")
    R_np = skew_block_matrix(dim)
    W = W.copy()
    np.fill_diagonal(W, 0.0)
    total = W.sum()
    if total <= 0:
        raise ValueError("wins holds no comparisons")
    n = W.shape[0]

    gen = torch.Generator().manual_seed(int(seed))
    V = (init_scale * torch.randn(n, dim, generator=gen, dtype=torch.float64)).requires_grad_(True)
    Wt = torch.as_tensor(W, dtype=torch.float64)
    R = torch.as_tensor(R_np, dtype=torch.float64)

    def nll_of(V):
        S = (V @ R.T) @ V.T
        return -(Wt * torch.nn.functional.logsigmoid(S)).sum()

    opt = torch.optim.LBFGS([V], lr=1.0, max_iter=max_iter, tolerance_grad=tol,
                            tolerance_change=1e-14, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (nll_of(V) + 0.5 * l2 * (V * V).sum()) / total
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        nll = float(nll_of(V))
        objective = (nll + 0.5 * l2 * float((V * V).sum())) / total
    n_iter = int(opt.state[V].get("n_iter", 0))
    return GPMFit(V.detach().numpy().copy(), nll, objective, float(total), n_iter)


def fit_general_preference_to_matrix(P, dim: int = 4, l2: float = 1e-4, seed: int = 0,
                                     **kwargs) -> GPMFit:
    """The best GPM approximation of a whole preference matrix (every pair weighted equally).

    Fits the fractional win counts W = P, the infinite-data limit of uniformly drawn comparisons
    (the same convention as :func:`dnolab.bradley_terry.fit_bradley_terry_to_matrix`). A small
    ``l2`` keeps the embeddings finite when P has entries 0 or 1.
    """
    P = validate_preference_matrix(P)
    return fit_general_preference(P, dim=dim, l2=l2, seed=seed, **kwargs)


def heldout_metrics(Q, test_wins, P_true=None) -> dict:
    """How a predicted preference matrix ``Q`` does on held-out comparisons ``test_wins``.

    ``test_wins[i, j]`` counts held-out comparisons in which i beat j. Returns

    * ``log_loss``: mean −log Q(winner ≻ loser) over the held-out comparisons (nats);
    * ``label_accuracy``: share of held-out comparisons whose observed winner Q favours
      (Q = 1/2 counts as half right);
    * ``accuracy`` (only with ``P_true``): share of held-out comparisons, over pairs with a true
      majority (P_true ≠ 1/2), on which Q points the same way as the true majority preference
      (Q = 1/2 counts as half right). Label noise cannot lower it, so 100 % is reachable.
    """
    Q = validate_preference_matrix(Q, name="Q")
    W = np.asarray(test_wins, dtype=float)
    if W.shape != Q.shape or not np.isfinite(W).all() or (W < 0).any():
        raise ValueError(f"test_wins must be a non-negative count matrix of shape {Q.shape}")
    W = W.copy()
    np.fill_diagonal(W, 0.0)
    total = W.sum()
    if total <= 0:
        raise ValueError("test_wins holds no comparisons")
    tie = 1e-12
    q_side = np.where(np.abs(Q - 0.5) <= tie, 0.0, np.sign(Q - 0.5))  # +1: Q favours i over j
    credit = (q_side > 0) + 0.5 * (q_side == 0)  # credit[i, j]: Q right when i won
    out = {
        "log_loss": float(-(W * np.log(np.clip(Q, 1e-12, 1.0))).sum() / total),
        "label_accuracy": float((W * credit).sum() / total),
    }
    if P_true is not None:
        P = validate_preference_matrix(P_true, name="P_true")
        if P.shape != Q.shape:
            raise ValueError(f"P_true must have shape {Q.shape}, got {P.shape}")
        pair = W + W.T  # comparisons per unordered pair, counted on both orientations
        truth = np.sign(P - 0.5)
        decided = (np.abs(P - 0.5) > 1e-9) & (pair > 0)
        agree = (q_side == truth) + 0.5 * (q_side == 0)
        weight = np.where(decided, pair, 0.0)
        out["accuracy"] = float((weight * agree).sum() / weight.sum()) if weight.sum() > 0 else float("nan")
    return out
