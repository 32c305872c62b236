"""The symmetric constant-sum preference game: equilibria, exploitability, divergences.

The game's payoff is P(π ≻ π') = πᵀPπ'; its value is 1/2 and its equilibrium policy is the
von Neumann (minimax) winner that DNO targets (Rosset et al. 2024, eq. 3). With
A = P − 1/2 (skew-symmetric), π is an equilibrium exactly when Aπ ≤ 0.

* :func:`nash` solves the game by linear programming (scipy's HiGHS), with two exact
  accelerations for large n that are certified by the best-response check;
* :func:`exploitability` is the headline metric expl(π) = max_y P(y ≻ π) − 1/2;
* :func:`regularized_nash` is the equilibrium of the KL-regularised game that Nash-MD and
  magnetic mirror descent converge to (their bias floor).

Introduced in notebooks/01_bradley_terry_limits; notebook 03 builds the dynamics
(:mod:`dnolab.dynamics`) on top.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg as sla
from scipy.optimize import linprog
from scipy.special import logsumexp, softmax

from .preferences import validate_preference_matrix

NASH_METHODS = ("auto", "highs", "support-generation", "interior-point")


class PolicyError(ValueError):
    """A policy that is not a probability vector over the game's n responses."""


class GameParameterError(ValueError):
    """A bad solver or dynamics setting (step size, temperature, tolerance, method name)."""


# ----------------------------------------------------------------------------- basics
def exploitability(P, pi) -> float:
    """expl(π) = max_y P(y ≻ π) − 1/2 ≥ 0: how much the best single response beats π by.

    Zero exactly at a Nash equilibrium; the duality gap of the profile (π, π) is twice this.
    """
    P = validate_preference_matrix(P)
    pi = _check_policy(pi, P.shape[0])
    return float((P @ pi).max() - 0.5)


def kl_divergence(p, q) -> float:
    """KL(p ‖ q) = Σ p log(p/q), with 0 log 0 = 0 and +inf where q = 0 < p."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise PolicyError(f"KL needs two policies of the same shape, got {p.shape} and {q.shape}")
    support = p > 0
    if np.any(q[support] <= 0):
        return float("inf")
    return float(np.sum(p[support] * (np.log(p[support]) - np.log(q[support]))))


def total_variation(p, q) -> float:
    """D_TV(p, q) = ½ Σ |p − q|."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise PolicyError(f"TV needs two policies of the same shape, got {p.shape} and {q.shape}")
    return float(0.5 * np.abs(p - q).sum())


def _check_policy(pi, n: int, name: str = "policy") -> np.ndarray:
    try:
        pi = np.asarray(pi, dtype=float)
    except (TypeError, ValueError) as err:
        raise PolicyError(f"{name} must be a numeric vector of {n} probabilities: {err}") from None
    if pi.shape != (n,):
        raise PolicyError(
            f"{name} must be a vector of {n} probabilities (one per response of the game), "
            f"got shape {pi.shape}"
        )
    if not np.isfinite(pi).all():
        raise PolicyError(f"{name} has non-finite entries (NaN or inf); pass probabilities")
    if (pi < -1e-12).any() or abs(pi.sum() - 1.0) > 1e-6:
        raise PolicyError(
            f"{name} must be non-negative and sum to 1 (sum is {pi.sum():.6g}, "
            f"min {pi.min():.3g}); normalise it with pi / pi.sum()"
        )
    return np.clip(pi, 0.0, None)


# ----------------------------------------------------------------------------- Nash by LP
def nash(P, method: str = "auto", tol: float = 1e-9) -> tuple[np.ndarray, float]:
    """A Nash equilibrium policy of the preference game and the value it guarantees.

    Solves max_{π ∈ Δ} min_{y'} P(π ≻ y') (paper eq. 3). Returns ``(pi, value)`` where
    ``value = min_{y'} (Pᵀπ)_{y'} = 1/2 − expl(π)``: 1/2 up to solver precision.

    ``method``:

    * ``"highs"``: the whole LP with scipy's HiGHS, in the normalised form
      max Σw s.t. Pw ≤ 1, w ≥ 0, π = w / Σw (the minimising player's LP with the value
      divided out: no free variable, no equality row). On games whose equilibrium mixes
      many responses it ran 1.5–2× faster than the textbook (π, v) form nashpy uses; on
      small-support games up to 1.5× slower (benchmarks/results/nash.md).
    * ``"support-generation"``: the double-oracle method (McMahan et al. 2003): solve the
      game restricted to a set S of responses by HiGHS, add every response that beats the
      restricted solution, repeat. Exact; fast when the equilibrium has a small support,
      as preference games built from a few annotators do.
    * ``"interior-point"``: a dense primal–dual interior-point method (Mehrotra
      predictor–corrector) for the self-dual game LP {π ≥ 0, Σπ = 1, Aπ ≤ 0}, followed by an
      exact solve on the identified support. Fast for large games with large supports
      (one (n+1)×(n+1) LU per iteration, ~15 iterations).
    * ``"auto"`` (default): for n > 150 support generation while the restricted game stays
      small (≤ max(50, n/8) responses), otherwise the interior-point method, which was the
      fastest for every size measured up to n = 300.

    Every path but ``"highs"`` checks its answer: it returns a policy whose exploitability
    is at most ``tol``, or, if that check fails (a degenerate game, say), HiGHS's solution
    of the full LP, which is exact to HiGHS's tolerances (~1e-9).
    """
    P = validate_preference_matrix(P)
    if method not in NASH_METHODS:
        raise GameParameterError(f"unknown nash method {method!r}; choose one of {NASH_METHODS}")
    if not (np.isfinite(tol) and tol > 0):
        raise GameParameterError(f"tol must be a positive number, got {tol!r}")
    n = P.shape[0]
    if method == "highs":
        pi = _nash_highs(P)
    elif method == "support-generation":
        pi = _support_generation(P, tol)
    elif method == "interior-point":
        pi = _interior_point_nash(P, tol)
    else:  # auto: the fastest certified path measured in benchmarks/results/nash.md
        pi = _support_generation(P, tol, max_support=max(50, n // 8)) if n > 150 else None
        if pi is None:
            pi = _interior_point_nash(P, tol)
    return pi, float(1.0 - (P @ pi).max())


def _normalise(w: np.ndarray) -> np.ndarray:
    w = np.clip(w, 0.0, None)
    return w / w.sum()


def _nash_highs(P: np.ndarray) -> np.ndarray:
    """max 1ᵀw s.t. Pw ≤ 1, w ≥ 0. At the optimum Σw = 1/value = 2 and π = w/Σw has
    max_y (Pπ)_y = value, i.e. expl(π) = 0. Feasible (w = 0) and bounded (value > 0)."""
    n = P.shape[0]
    res = linprog(-np.ones(n), A_ub=P, b_ub=np.ones(n), bounds=(0, None), method="highs")
    if res.status != 0:  # pragma: no cover - the LP is feasible and bounded for any valid P
        raise RuntimeError(f"linear program failed: {res.message}")
    return _normalise(res.x)


def _support_generation(P: np.ndarray, tol: float, start=None,
                        max_support: int | None = None) -> np.ndarray | None:
    """Double oracle on the symmetric game; ``None`` if the restricted set outgrows ``max_support``."""
    n = P.shape[0]
    if start is None:
        start = [int(np.argmax(P.mean(axis=1)))]  # the best response to the uniform policy
    S = np.unique(np.asarray(start, dtype=int))
    while True:
        pi = np.zeros(n)
        pi[S] = _nash_highs(P[np.ix_(S, S)])
        r = P @ pi
        better = np.flatnonzero(r > 0.5 + tol)
        if better.size == 0:
            return pi
        if np.isin(better, S).all():  # HiGHS's own tolerance (~1e-9) is above tol: polish
            polished = _solve_on_support(P, np.flatnonzero(pi > 0))
            if polished is not None and (P @ polished).max() - 0.5 <= tol:
                return polished
            return _nash_highs(P)
        S = np.union1d(S, better)
        if max_support is not None and S.size > max_support:
            return None


def _solve_on_support(P: np.ndarray, S: np.ndarray) -> np.ndarray | None:
    """The equilibrium with support S, if one exists: solve A_SS π_S = v·1, 1ᵀπ_S = 1 exactly.

    (Every response in the support of an equilibrium earns the value, here v = 0.) Returns
    ``None`` when the system is singular (S of even size, ties) or the solution is not a policy.
    """
    n, k = P.shape[0], S.size
    if k == 0:
        return None
    A = P - 0.5
    M = np.zeros((k + 1, k + 1))
    M[:k, :k] = 0.5 * (A[np.ix_(S, S)] - A[np.ix_(S, S)].T)
    M[:k, k] = -1.0
    M[k, :k] = 1.0
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            z = sla.solve(M, rhs, check_finite=False)
        except (sla.LinAlgError, ValueError):
            return None
    if not np.isfinite(z).all() or z[:k].min() < -1e-12:
        return None
    pi = np.zeros(n)
    pi[S] = z[:k]
    return _normalise(pi)


def _interior_point_nash(P: np.ndarray, tol: float, max_iter: int = 80) -> np.ndarray:
    """Mehrotra predictor–corrector on {x ≥ 0, s = v·1 − Ax ≥ 0, 1ᵀx = 1, x∘s = 0}.

    The LP min v s.t. Ax ≤ v·1, 1ᵀx = 1, x ≥ 0 is self-dual when A is skew-symmetric, so its
    central path has dual = primal and the Newton system is the bordered, non-symmetric
    [[A − S/X, −1], [1ᵀ, 0]] in (Δx, Δv). The start x = uniform, v = max(Ax) + 1 is feasible
    and full Newton steps keep it so (the constraints are linear).
    """
    A = P - 0.5
    A = 0.5 * (A - A.T)  # exactly skew-symmetric
    n = A.shape[0]
    x = np.full(n, 1.0 / n)
    v = float((A @ x).max()) + 1.0
    s = v - A @ x
    K = np.zeros((n + 1, n + 1))
    K[:n, :n] = A
    K[:n, n] = -1.0
    K[n, :n] = 1.0
    diag = np.arange(n)

    def max_step(z, dz):
        neg = dz < 0
        return min(1.0, float((-z[neg] / dz[neg]).min())) if neg.any() else 1.0

    for _ in range(max_iter):
        mu = float(x @ s) / n
        if mu < 1e-13:
            break
        K[diag, diag] = -s / x
        lu = sla.lu_factor(K, check_finite=False)
        r_primal = s - v + A @ x  # zero up to rounding; kept so rounding does not accumulate
        r_norm = x.sum() - 1.0

        # Newton system for the complementarity target x∘s = x∘s − rc (rc = x∘s: predictor)
        def newton(rc, lu, r_primal, r_norm, x, s):
            d = sla.lu_solve(lu, np.append(-r_primal + rc / x, -r_norm), check_finite=False)
            dx = d[:n]
            return dx, d[n], (-rc - s * dx) / x

        dx, dv, ds = newton(x * s, lu, r_primal, r_norm, x, s)  # affine-scaling predictor
        step = min(max_step(x, dx), max_step(s, ds))
        mu_aff = float((x + step * dx) @ (s + step * ds)) / n
        sigma = (mu_aff / mu) ** 3
        dx, dv, ds = newton(x * s + dx * ds - sigma * mu, lu, r_primal, r_norm, x, s)  # corrector
        step = min(1.0, 0.99 * min(max_step(x, dx), max_step(s, ds)))
        x, s, v = x + step * dx, s + step * ds, v + step * dv

    pi = _solve_on_support(P, np.flatnonzero(x > s))
    if pi is not None and (P @ pi).max() - 0.5 <= tol:
        return pi
    # Degenerate game or a wrongly identified support: finish exactly with HiGHS on the
    # candidate set, expanded by support generation until no response beats it.
    candidates = np.flatnonzero(x >= 1e-3 * s)
    return _support_generation(P, tol, start=candidates if candidates.size else None)


# ----------------------------------------------------------------------------- regularised
def regularized_nash(P, tau: float, reference=None, tol: float = 1e-12,
                     max_iter: int = 100_000) -> np.ndarray:
    """The equilibrium of the KL-regularised game (Munos et al. 2024; DNO App. A, eq. 5–6).

    Payoff P(π ≻ π') − τ KL(π ‖ μ) + τ KL(π' ‖ μ) with reference μ (uniform by default).
    Strongly monotone, so the equilibrium π*_τ is unique; it is the fixed point

        π*_τ(y) ∝ μ(y) · exp(P(y ≻ π*_τ) / τ)          (a quantal-response equilibrium).

    Nash-MD and magnetic mirror descent with a fixed magnet converge to it, so its
    exploitability in the *original* game is their bias floor. Solved by magnetic mirror
    descent (Sokota et al. 2023, a contraction in KL for step η ≤ τ/‖A‖²) and finished by
    Newton's method on the logits; returns when the fixed-point residual is below ``tol``.
    """
    P = validate_preference_matrix(P)
    n = P.shape[0]
    if not (np.isfinite(tau) and tau > 0):
        raise GameParameterError(
            f"regularisation tau must be a positive number, got {tau!r}; "
            "tau -> 0 recovers the unregularised game, use nash() for it"
        )
    mu = np.full(n, 1.0 / n) if reference is None else _check_policy(reference, n, "reference")
    if (mu <= 0).any():
        raise PolicyError("the reference policy must give every response positive probability")
    log_mu = np.log(mu)

    def best_response_logits(z):  # log of the regularised best response to softmax(z)
        w = log_mu + P @ softmax(z) / tau
        return w - logsumexp(w)

    # Magnetic mirror descent (Sokota et al. 2023, eq. for the entropy mirror map) on the
    # regularised game: contracts toward π*_τ for a step η ≤ τ / L², L = max |A_ij|.
    L = max(float(np.abs(P - 0.5).max()), 1e-12)
    eta = tau / (L**2 + tau**2)
    z = log_mu - logsumexp(log_mu)
    for _ in range(max_iter):
        new = (z + eta * tau * log_mu + eta * (P @ softmax(z))) / (1.0 + eta * tau)
        new -= logsumexp(new)
        done = np.abs(new - z).max() < 1e-6
        z = new
        if done:
            break
    # Newton's method on F(z) = z − g(z), g = best_response_logits, with backtracking.
    F = z - best_response_logits(z)
    for _ in range(100):
        if np.abs(F).max() < tol:
            break
        pi = softmax(z)
        q = softmax(log_mu + P @ pi / tau)
        J_g = (np.eye(n) - np.outer(np.ones(n), q)) @ P @ (np.diag(pi) - np.outer(pi, pi)) / tau
        dz = np.linalg.solve(np.eye(n) - J_g, -F)
        step = 1.0
        while step > 1e-6:
            z_new = z + step * dz
            z_new -= logsumexp(z_new)
            F_new = z_new - best_response_logits(z_new)
            if np.abs(F_new).max() < np.abs(F).max():
                break
            step /= 2
        z, F = z_new, F_new
    if np.abs(F).max() > max(tol, 1e-9):  # pragma: no cover - Newton converges from MMD's point
        raise RuntimeError(
            f"regularised equilibrium did not converge (residual {np.abs(F).max():.2e}); "
            "raise max_iter or tau"
        )
    return softmax(z)
