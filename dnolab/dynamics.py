"""Learning dynamics on the tabular preference game, behind one update API.

Every method is a :class:`Dynamics`: ``reset(pi0)`` then ``step()`` returns the next policy
(the *last iterate*). :func:`run_dynamics` runs one for T iterations and records, at every
iteration, the last iterate, the *mixture of iterates* (the paper's: after t iterations, the
uniform mixture of π_1..π_t, where π_1 is the start and π_{t+1} the last iterate; see
docs/glossary.md), the exploitability of both and their KL divergence KL(π* ‖ ·) from an
equilibrium π*.

r_t(y) = P(y ≻ π_t) = (Pπ_t)_y is the win-rate "reward" of DNO and SPPO. Multiplicative
updates are computed on log-probabilities, so long runs neither underflow nor overflow.

=====================  ==================================================================
``method``             update (source)
=====================  ==================================================================
``"dno_spi"``          π_{t+1} ∝ π_t exp(r_t/η)  (DNO soft policy iteration, eq. 4 / 9)
``"dno_sampled"``      DNO Algorithm 1 by samples: the soft-label regression of eq. 8
``"sppo"``             π_{t+1} ∝ π_t exp(η r_t)  (SPPO, Wu et al. 2024)
``"nash_md"``          geometric mixture toward μ, then a step (Nash-MD, Munos et al. 2024)
``"hedge"``            π_{t+1} ∝ π_t exp(η_t r_t)  (Freund & Schapire 1997)
``"optimistic_hedge"`` π_{t+1} ∝ π_t exp(η(2r_t − r_{t−1}))  (Rakhlin & Sridharan 2013)
``"extragradient"``    mirror-prox: half step, then step with the half step's reward
                       (Korpelevich 1976; Nemirovski 2004)
``"mmd"``              magnetic mirror descent, optional magnet reset (Sokota et al. 2023)
``"fictitious_play"``  π_{t+1} = best response to the average (Brown 1951; Robinson 1951)
``"replicator"``       Euler step of dπ/dt = π ⊙ (r − ½)  (Taylor & Jonker 1978)
=====================  ==================================================================

:data:`STEP_SIZE_CONVENTIONS` maps each paper's step-size parameter onto one scale.
Introduced in notebooks/03_nash_preference_game.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, log_expit, logsumexp

from .games import (
    GameParameterError,
    PolicyError,
    _check_policy,
    kl_divergence,
    nash,
)
from .preferences import validate_preference_matrix


class UnknownMethodError(GameParameterError):
    """A dynamics name that is not in :data:`METHODS`."""


# ----------------------------------------------------------------------------- conventions
STEP_SIZE_CONVENTIONS = (
    {"method": "DNO soft policy iteration (eq. 4, 9)", "update": "π_t·exp(r_t/η)",
     "parameter": "η", "mwu_step": "1/η", "dnolab": "dno_spi(eta=η)"},
    {"method": "DNO Alg. 1 regression (eq. 8), DNO-Prct (eq. 13)",
     "update": "fit η·log(π/π_t)(y1) − η·log(π/π_t)(y2) to r_t(y1) − r_t(y2)",
     "parameter": "η (= DPO's β)", "mwu_step": "1/η", "dnolab": "dno_sampled(eta=η)"},
    {"method": "DPO / KL-regularised reward maximisation", "update": "π_ref·exp(r/β)",
     "parameter": "β", "mwu_step": "1/β (with r the win rate)", "dnolab": "dno_spi(eta=β)"},
    {"method": "SPPO (Wu et al. 2024)", "update": "π_t·exp(η·r_t)",
     "parameter": "η (code: 1/beta)", "mwu_step": "η", "dnolab": "sppo(eta=η)"},
    {"method": "Hedge / MWU", "update": "π_t·exp(η_t·r_t)", "parameter": "η_t",
     "mwu_step": "η_t", "dnolab": "hedge(eta=η or 'anytime')"},
    {"method": "Nash-MD (Munos et al. 2024)",
     "update": "π^μ ∝ π_t^{1−ητ}μ^{ητ}; π^μ·exp(η·P(y ≻ π^μ))",
     "parameter": "η, τ (TRL mixture_coef = ητ, beta = τ)", "mwu_step": "η (pull ητ)",
     "dnolab": "nash_md(eta=η, tau=τ)"},
    {"method": "Regularised DNO (App. A, eq. 14)", "update": "π_t^{1−τ/η}·π_ref^{τ/η} ...",
     "parameter": "η, τ", "mwu_step": "1/η (pull τ/η)", "dnolab": "nash_md(eta=1/η, tau=τ)"},
    {"method": "MMD (Sokota et al. 2023)", "update": "[π_t·μ^{ηα}·exp(η·r_t)]^{1/(1+ηα)}",
     "parameter": "η, α", "mwu_step": "η/(1+ηα)", "dnolab": "mmd(eta=η, alpha=α)"},
)


def step_size_table() -> str:
    """:data:`STEP_SIZE_CONVENTIONS` as a Markdown table."""
    cols = ("method", "update", "parameter", "mwu_step", "dnolab")
    head = ("method", "update (∝)", "parameter", "step on r_t in the exponent", "here")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row[c] for c in cols) + " |" for row in STEP_SIZE_CONVENTIONS]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers
def _positive(name: str, value, allow_zero: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise GameParameterError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise GameParameterError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def _count(name: str, value, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        extra = " or None" if allow_none else ""
        raise GameParameterError(f"{name} must be a positive integer{extra}, got {value!r}")
    return int(value)


def _log(pi: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(pi)


def _softmax_log(z: np.ndarray) -> np.ndarray:
    """Normalise log-weights z to log-probabilities."""
    return z - logsumexp(z)


def soft_policy_iteration_step(P, pi, eta: float) -> np.ndarray:
    """One exact step of DNO's soft policy iteration (Rosset et al. 2024, eq. 4 and 9).

    r_t(y) = P(y ≻ π_t) and π_{t+1}(y) = π_t(y) exp(r_t(y)/η) / Z_t: the maximiser of
    P(π ≻ π_t) − η KL(π ‖ π_t).
    """
    P = validate_preference_matrix(P)
    pi = _check_policy(pi, P.shape[0])
    eta = _positive("eta", eta)
    return np.exp(_softmax_log(_log(pi) + (P @ pi) / eta))


# ----------------------------------------------------------------------------- DNO regression
def dno_regression_loss(u, y1, y2, z, eta: float, l2: float = 0.0, weights=None,
                        n_pairs: int | None = None):
    """DNO's soft-label logistic loss (eq. 8) and its gradient in u = log(π/π_t) + const.

    For each pair (y1, y2) with label z (the soft label σ(r_t(y1) − r_t(y2)), or a 0/1 draw
    from it): −z log σ(η(u_{y1} − u_{y2})) − (1 − z) log σ(η(u_{y2} − u_{y1})), averaged
    with ``weights`` (default uniform), plus (l2 / 2N)·‖u‖² (a Gaussian prior worth ``l2``
    pairs; N = ``n_pairs``, by default the number of rows). The normaliser of π cancels in
    the difference, so u is a log-ratio up to a constant and the policy is π ∝ π_t exp(u).
    """
    u = np.asarray(u, dtype=float)
    n_pairs = len(y1) if n_pairs is None else n_pairs
    w = np.full(len(y1), 1.0 / len(y1)) if weights is None else np.asarray(weights, float)
    d = eta * (u[y1] - u[y2])
    loss = float(np.sum(w * (-z * log_expit(d) - (1 - z) * log_expit(-d))))
    g_pair = eta * w * (expit(d) - z)
    grad = np.bincount(y1, g_pair, u.size) - np.bincount(y2, g_pair, u.size)
    if l2:
        loss += 0.5 * l2 / n_pairs * float(u @ u)
        grad = grad + l2 / n_pairs * u
    return loss, grad


def fit_dno_regression(n: int, y1, y2, z, eta: float, l2: float = 0.0, weights=None,
                       n_pairs: int | None = None, tol: float = 1e-10,
                       max_iter: int = 100) -> np.ndarray:
    """Minimise :func:`dno_regression_loss` over u ∈ Rⁿ by Newton's method; returns u.

    The loss is convex; its Hessian is the graph Laplacian of the sampled pairs weighted by
    η²σ'(d). Responses that appear in no pair get no gradient and keep u = 0 (no change
    relative to π_t). Newton runs on the responses that appear, with a tiny ridge for the
    Laplacian's constant null-space, and backtracking on the loss.
    """
    y1 = np.asarray(y1, dtype=int)
    y2 = np.asarray(y2, dtype=int)
    z = np.asarray(z, dtype=float)
    seen, inv = np.unique(np.concatenate([y1, y2]), return_inverse=True)
    a, b = inv[: y1.size], inv[y1.size:]
    k = seen.size
    w = np.full(y1.size, 1.0 / y1.size) if weights is None else np.asarray(weights, float)
    n_pairs = y1.size if n_pairs is None else n_pairs
    u = np.zeros(k)
    loss, grad = dno_regression_loss(u, a, b, z, eta, l2, w, n_pairs)
    for _ in range(max_iter):
        if np.abs(grad).max() < tol:
            break
        d = eta * (u[a] - u[b])
        h = eta**2 * w * expit(d) * expit(-d)
        H = np.zeros((k, k))
        np.add.at(H, (a, a), h)
        np.add.at(H, (b, b), h)
        np.add.at(H, (a, b), -h)
        np.add.at(H, (b, a), -h)
        H[np.diag_indices(k)] += l2 / n_pairs + 1e-12 * (1.0 + np.trace(H) / k)
        step = np.linalg.solve(H, -grad)
        t = 1.0
        while True:
            new_loss, new_grad = dno_regression_loss(u + t * step, a, b, z, eta, l2, w, n_pairs)
            if new_loss <= loss + 1e-4 * t * float(grad @ step) or t < 1e-8:
                break
            t *= 0.5
        u, loss, grad = u + t * step, new_loss, new_grad
    full = np.zeros(n)
    full[seen] = u - u.mean()
    return full


def dno_regression_step(P, pi, eta: float, n_pairs: int, rng, sampling=None,
                        opponents: int | None = None, labels: str = "soft",
                        l2: float = 0.0) -> np.ndarray:
    """One iteration of DNO Algorithm 1 from samples (Rosset et al. 2024, lines 3–4, eq. 8).

    1. Draw ``n_pairs`` pairs y1, y2 ~ μ independently; μ = π_t (on-policy, ``sampling=None``),
       a fixed policy (off-policy) or a callable ``sampling(pi_t) -> μ``.
    2. Win rates r_t(y) = P(y ≻ π_t): exact (``opponents=None``) or estimated as the mean of
       P(y ≻ y') over one batch of ``opponents`` draws y' ~ π_t shared by all responses (the
       win rate against the empirical policy of the batch, as DNO-Prct's ranking of K samples).
    3. Label z = σ(r_t(y1) − r_t(y2)) (``labels="soft"``) or one Bernoulli draw from it
       (``labels="bernoulli"``, a judge that only says which is better).
    4. Fit π_{t+1} ∝ π_t exp(u) by minimising the soft-label logistic loss with π_t as the
       reference (:func:`fit_dno_regression`).
    """
    P = validate_preference_matrix(P)
    n = P.shape[0]
    pi = _check_policy(pi, n)
    eta = _positive("eta", eta)
    n_pairs = _count("n_pairs", n_pairs)
    opponents = _count("opponents", opponents, allow_none=True)
    if labels not in ("soft", "bernoulli"):
        raise GameParameterError(f"labels must be 'soft' or 'bernoulli', got {labels!r}")
    mu = pi if sampling is None else (sampling(pi) if callable(sampling) else sampling)
    mu = _check_policy(mu, n, "sampling distribution μ")
    y1 = rng.choice(n, size=n_pairs, p=mu)
    y2 = rng.choice(n, size=n_pairs, p=mu)
    if opponents is None:
        r = P @ pi
    else:  # one shared batch of opponents, as DNO-Prct ranks its K samples against each other
        rivals = rng.choice(n, size=opponents, p=pi)
        r = P[:, rivals].mean(axis=1)
    z = expit(r[y1] - r[y2])
    if labels == "bernoulli":
        z = (rng.random(n_pairs) < z).astype(float)
    # The loss is linear in z, so repeated pairs can be merged: weight = count / N and
    # z = mean label. Identical objective, and the fit costs O(n²) however large N is.
    pair_id = y1 * n + y2
    ids, inverse, counts = np.unique(pair_id, return_inverse=True, return_counts=True)
    z_mean = np.bincount(inverse, z, ids.size) / counts
    u = fit_dno_regression(n, ids // n, ids % n, z_mean, eta, l2=l2,
                           weights=counts / n_pairs, n_pairs=n_pairs)
    return np.exp(_softmax_log(_log(pi) + u))


# ----------------------------------------------------------------------------- dynamics
class Dynamics:
    """Base class: a policy update on the preference game P. Subclasses set ``name``,
    ``source`` and implement ``_step``; state lives on the instance."""

    name = "base"
    source = ""

    def __init__(self, P):
        self.P = validate_preference_matrix(P)
        self.n = self.P.shape[0]
        self.pi: np.ndarray | None = None
        self.t = 0

    def reset(self, pi0=None) -> np.ndarray:
        """Start from ``pi0`` (uniform by default) and return it."""
        pi0 = np.full(self.n, 1.0 / self.n) if pi0 is None else _check_policy(pi0, self.n, "pi0")
        self.pi = pi0 / pi0.sum()
        self.logpi = _log(self.pi)
        self.t = 0
        self.average = self.pi.copy()
        self._reset()
        return self.pi

    def _reset(self) -> None:
        pass

    def step(self) -> np.ndarray:
        """Advance one iteration and return the new last iterate π_{t+1}."""
        if self.pi is None:
            self.reset()
        self.logpi = self._step()
        self.pi = np.exp(self.logpi)
        self.pi /= self.pi.sum()
        self.t += 1
        self.average += (self.pi - self.average) / (self.t + 1)
        return self.pi

    def reward(self, pi) -> np.ndarray:
        """r(y) = P(y ≻ π)."""
        return self.P @ pi

    def _step(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class SoftPolicyIteration(Dynamics):
    name, source = "dno_spi", "DNO soft policy iteration, Rosset et al. 2024 eq. 4/9"

    def __init__(self, P, eta: float = 1.0):
        super().__init__(P)
        self.eta = _positive("eta", eta)

    def _step(self):  # π_{t+1} ∝ π_t exp(r_t / η)
        return _softmax_log(self.logpi + self.reward(self.pi) / self.eta)


class SampledDNO(Dynamics):
    name, source = "dno_sampled", "DNO Algorithm 1 (eq. 8) from sampled pairs, Rosset et al. 2024"

    def __init__(self, P, eta: float = 1.0, n_pairs: int = 64, opponents: int | None = 16,
                 sampling=None, labels: str = "soft", l2: float = 0.0, rng=None):
        super().__init__(P)
        self.eta = _positive("eta", eta)
        self.n_pairs = _count("n_pairs", n_pairs)
        self.opponents = _count("opponents", opponents, allow_none=True)
        self.sampling, self.labels = sampling, labels
        self.l2 = _positive("l2", l2, allow_zero=True)
        self.rng = np.random.default_rng(rng)
        if labels not in ("soft", "bernoulli"):
            raise GameParameterError(f"labels must be 'soft' or 'bernoulli', got {labels!r}")

    def _step(self):
        new = dno_regression_step(self.P, self.pi, self.eta, self.n_pairs, self.rng,
                                  sampling=self.sampling, opponents=self.opponents,
                                  labels=self.labels, l2=self.l2)
        return _log(new)


class SPPO(Dynamics):
    name, source = "sppo", "SPPO, Wu et al. 2024 (tabular form of their update)"

    def __init__(self, P, eta: float = 1.0):
        super().__init__(P)
        self.eta = _positive("eta", eta)

    def _step(self):  # π_{t+1} ∝ π_t exp(η P(y ≻ π_t))
        return _softmax_log(self.logpi + self.eta * self.reward(self.pi))


class Hedge(Dynamics):
    name, source = "hedge", "Hedge / multiplicative weights, Freund & Schapire 1997"

    def __init__(self, P, eta: float | str = "anytime"):
        super().__init__(P)
        if eta != "anytime":
            eta = _positive("eta", eta)
        self.eta = eta

    def step_size(self, t: int) -> float:
        """η_t: constant, or the anytime schedule √(8 ln n / t) (Cesa-Bianchi & Lugosi 2006)."""
        if self.eta == "anytime":
            return float(np.sqrt(8.0 * np.log(self.n) / t))
        return self.eta

    def _step(self):
        return _softmax_log(self.logpi + self.step_size(self.t + 1) * self.reward(self.pi))


class OptimisticHedge(Dynamics):
    name, source = "optimistic_hedge", "optimistic MWU, Rakhlin & Sridharan 2013; Daskalakis & Panageas 2019"

    def __init__(self, P, eta: float = 1.0):
        super().__init__(P)
        self.eta = _positive("eta", eta)

    def _reset(self):
        self.previous_reward = self.reward(self.pi)  # r_{-1} = r_0

    def _step(self):  # π_{t+1} ∝ π_t exp(η (2 r_t − r_{t−1}))
        r = self.reward(self.pi)
        new = _softmax_log(self.logpi + self.eta * (2.0 * r - self.previous_reward))
        self.previous_reward = r
        return new


class Extragradient(Dynamics):
    name, source = "extragradient", "mirror-prox / extragradient MWU, Korpelevich 1976; Nemirovski 2004"

    def __init__(self, P, eta: float = 1.0):
        super().__init__(P)
        self.eta = _positive("eta", eta)

    def _step(self):
        half = np.exp(_softmax_log(self.logpi + self.eta * self.reward(self.pi)))
        return _softmax_log(self.logpi + self.eta * self.reward(half))


class NashMD(Dynamics):
    name, source = "nash_md", "Nash-MD, Munos et al. 2024 (constant step)"

    def __init__(self, P, eta: float = 1.0, tau: float = 0.1, reference=None):
        super().__init__(P)
        self.eta = _positive("eta", eta)
        self.tau = _positive("tau", tau)
        if self.eta * self.tau > 1:
            raise GameParameterError(
                f"Nash-MD needs eta * tau <= 1 (the mixture weight on the reference), "
                f"got {self.eta * self.tau:.3g}; lower eta or tau"
            )
        self._reference = reference

    def _reset(self):
        ref = self.pi if self._reference is None else _check_policy(self._reference, self.n, "reference")
        if (ref <= 0).any():
            raise PolicyError("the Nash-MD reference must give every response positive probability")
        self.log_reference = np.log(ref)

    def _step(self):
        # π^μ ∝ π_t^{1−ητ} μ^{ητ}, then π_{t+1} ∝ π^μ exp(η P(y ≻ π^μ))
        mix = _softmax_log((1 - self.eta * self.tau) * self.logpi + self.eta * self.tau * self.log_reference)
        return _softmax_log(mix + self.eta * self.reward(np.exp(mix)))


class MMD(Dynamics):
    name, source = "mmd", "magnetic mirror descent, Sokota et al. 2023 (magnet reset: Liu et al. 2024, COMAL)"

    def __init__(self, P, eta: float = 1.0, alpha: float = 0.1, magnet=None,
                 reset_every: int | None = None):
        super().__init__(P)
        self.eta = _positive("eta", eta)
        self.alpha = _positive("alpha", alpha, allow_zero=True)
        self.reset_every = _count("reset_every", reset_every, allow_none=True)
        self._magnet = magnet

    def _reset(self):
        magnet = self.pi if self._magnet is None else _check_policy(self._magnet, self.n, "magnet")
        if (magnet <= 0).any() and self.alpha > 0:
            raise PolicyError("the MMD magnet must give every response positive probability")
        self.log_magnet = _log(magnet)

    def _step(self):
        # π_{t+1} ∝ [π_t μ^{ηα} exp(η r_t)]^{1/(1+ηα)}
        ea = self.eta * self.alpha
        z = self.logpi + self.eta * self.reward(self.pi)
        if ea:
            z = z + ea * self.log_magnet
        new = _softmax_log(z / (1.0 + ea))
        if self.reset_every and (self.t + 1) % self.reset_every == 0:
            self.log_magnet = new.copy()  # prox-point outer step: the magnet moves to π_{t+1}
        return new


class FictitiousPlay(Dynamics):
    name, source = "fictitious_play", "fictitious play, Brown 1951; Robinson 1951"

    def _step(self):  # best response to the running average π̄_t (ties: lowest index)
        out = np.full(self.n, -np.inf)
        out[int(np.argmax(self.reward(self.average)))] = 0.0
        return out


class Replicator(Dynamics):
    name, source = "replicator", "replicator dynamics, Taylor & Jonker 1978 (Euler step)"

    def __init__(self, P, step: float = 0.1):
        super().__init__(P)
        self.h = _positive("step", step)
        if self.h > 2:
            raise GameParameterError(
                f"replicator step must be <= 2 so probabilities stay non-negative, got {step!r}"
            )

    def _step(self):  # π ← π + h π ⊙ (r − ½); πᵀPπ = ½, so the mean fitness is ½
        new = self.pi * (1.0 + self.h * (self.reward(self.pi) - 0.5))
        return _log(new / new.sum())


METHODS: dict[str, type[Dynamics]] = {
    cls.name: cls for cls in (SoftPolicyIteration, SampledDNO, SPPO, NashMD, Hedge, OptimisticHedge,
                              Extragradient, MMD, FictitiousPlay, Replicator)
}


def make_dynamics(method: str, P, **params) -> Dynamics:
    """Build the dynamics named ``method`` (a key of :data:`METHODS`) on game ``P``."""
    if method not in METHODS:
        raise UnknownMethodError(
            f"unknown dynamics {method!r}; choose one of {sorted(METHODS)}"
        )
    try:
        return METHODS[method](P, **params)
    except TypeError as err:
        raise GameParameterError(f"bad parameters for {method!r}: {err}") from None


# ----------------------------------------------------------------------------- runs
@dataclass
class History:
    """What :func:`run_dynamics` records; row t of each array is iteration t = 0..T.

    Numbered as in the paper: row t of ``last`` is π_{t+1}, the policy after t iterations
    (row 0 is the start π_1), and row t of ``average`` is the uniform mixture of π_1..π_t,
    what Algorithm 1 returns after t iterations (the mean of rows 0..t−1 of ``last``; row 0,
    before any iteration, is π_1 itself).
    """

    method: str
    params: dict
    last: np.ndarray  # (T+1, n) last iterates: row t is π_{t+1}
    average: np.ndarray  # (T+1, n) mixtures of iterates: row t is unif(π_1..π_t), row 0 is π_1
    last_exploitability: np.ndarray
    average_exploitability: np.ndarray
    last_kl: np.ndarray  # KL(π* ‖ π_t)
    average_kl: np.ndarray  # KL(π* ‖ average)
    equilibrium: np.ndarray
    seconds: float  # time spent in the updates only
    extra: dict = field(default_factory=dict)

    @property
    def T(self) -> int:
        return self.last.shape[0] - 1


def run_dynamics(P, method: str, T: int, pi0=None, equilibrium=None, **params) -> History:
    """Run ``method`` for ``T`` iterations from ``pi0`` and record both iterates.

    ``equilibrium`` is the π* for the KL columns (``nash(P)`` by default).
    """
    P = validate_preference_matrix(P)
    T = _count("T", T)
    dyn = make_dynamics(method, P, **params)
    pi_star = nash(P)[0] if equilibrium is None else _check_policy(equilibrium, P.shape[0], "equilibrium")
    last = np.empty((T + 1, dyn.n))
    last[0] = dyn.reset(pi0)
    seconds = 0.0
    for t in range(1, T + 1):
        start = time.perf_counter()
        last[t] = dyn.step()
        seconds += time.perf_counter() - start
    # the paper's mixture after t iterations: unif(π_1..π_t) = mean of last[0..t-1]
    avg = np.empty_like(last)
    avg[0] = last[0]
    avg[1:] = np.cumsum(last[:-1], axis=0) / np.arange(1, T + 1)[:, None]
    best_last = (last @ P.T).max(axis=1) - 0.5
    best_avg = (avg @ P.T).max(axis=1) - 0.5
    return History(
        method=method, params=dict(params), last=last, average=avg,
        last_exploitability=best_last, average_exploitability=best_avg,
        last_kl=np.array([kl_divergence(pi_star, p) for p in last]),
        average_kl=np.array([kl_divergence(pi_star, p) for p in avg]),
        equilibrium=pi_star, seconds=seconds,
    )


__all__ = [
    "METHODS", "STEP_SIZE_CONVENTIONS", "Dynamics", "History", "UnknownMethodError",
    "dno_regression_loss", "dno_regression_step", "fit_dno_regression",
    "make_dynamics", "run_dynamics", "soft_policy_iteration_step", "step_size_table",
]
