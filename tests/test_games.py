"""dnolab.games and dnolab.dynamics: known answers, independent solvers, exact identities.

Reference values come from textbooks or from libraries other than ours (nashpy, scipy);
identities are derived in notebook 03 and checked here on random instances.
"""

from fractions import Fraction

import nashpy
import numpy as np
import pytest
from scipy.optimize import check_grad, minimize, root
from scipy.special import expit, log_expit, softmax

from dnolab.dynamics import (
    METHODS,
    STEP_SIZE_CONVENTIONS,
    UnknownMethodError,
    dno_regression_loss,
    dno_regression_step,
    fit_dno_regression,
    make_dynamics,
    run_dynamics,
    soft_policy_iteration_step,
    step_size_table,
)
from dnolab.games import (
    NASH_METHODS,
    GameParameterError,
    PolicyError,
    exploitability,
    kl_divergence,
    nash,
    regularized_nash,
    total_variation,
)
from dnolab.preferences import (
    PreferenceMatrixError,
    bradley_terry_matrix,
    bt_mixture_matrix,
    dice_matrix,
    efron_dice,
    rock_paper_scissors,
    voting_profile_matrix,
)


def random_game(n, seed):
    """A preference matrix with independent uniform P(i ≻ j) above the diagonal."""
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.uniform(size=(n, n)), 1)
    P = upper + np.tril(1.0 - upper.T, -1)
    np.fill_diagonal(P, 0.5)
    return P


def random_policy(n, rng, concentration=1.0):
    return rng.dirichlet(np.full(n, concentration))


MIXTURE_20, _ = bt_mixture_matrix(20, weights=(0.4, 0.35, 0.25), scale=10.0, rng=13)


# ----------------------------------------------------------------------------- known answers
@pytest.mark.parametrize("method", NASH_METHODS)
def test_rps_equilibrium_is_uniform_with_value_one_half(method):
    pi, value = nash(rock_paper_scissors(), method=method)
    np.testing.assert_allclose(pi, 1 / 3, atol=1e-9)
    assert value == pytest.approx(0.5, abs=1e-9)
    assert exploitability(rock_paper_scissors(), pi) == pytest.approx(0.0, abs=1e-9)


def test_pure_response_in_rps_is_maximally_exploitable():
    assert exploitability(rock_paper_scissors(), [1, 0, 0]) == pytest.approx(0.5)


def test_efron_textbook_equilibrium_in_exact_arithmetic():
    # P from the faces with fractions, independent of dice_matrix's floating point.
    faces = [[4, 4, 4, 4, 0, 0], [3] * 6, [6, 6, 2, 2, 2, 2], [5, 5, 5, 1, 1, 1]]
    P = [[Fraction(sum((a > b) + Fraction(a == b, 2) for a in fi for b in fj), 36) for fj in faces]
         for fi in faces]
    pi = [Fraction(3, 7), Fraction(1, 7), Fraction(3, 7), Fraction(0)]
    win_rates = [sum(P[i][j] * pi[j] for j in range(4)) for i in range(4)]
    assert max(win_rates) == Fraction(1, 2)  # exploitability exactly 0
    assert exploitability(efron_dice(), [3 / 7, 1 / 7, 3 / 7, 0]) == pytest.approx(0, abs=1e-15)


@pytest.mark.parametrize("method", NASH_METHODS)
def test_efron_equilibria_form_the_segment_nashpy_enumerates(method):
    """Efron's dice have a segment of equilibria: (3/7, 1/7, 3/7, 0) is one end and
    (0, 1/2, 0, 1/2) the other (B and D tie; A and C each win 1/2 against their even mix).
    nash may return any point of it; nashpy's vertex enumeration lists the two ends."""
    P = efron_dice()
    ends = np.array([[3 / 7, 1 / 7, 3 / 7, 0], [0, 1 / 2, 0, 1 / 2]])
    vertices = {tuple(np.round(eq[0], 9)) for eq in nashpy.Game(P - 0.5).vertex_enumeration()}
    assert vertices == {tuple(np.round(e, 9)) for e in ends}
    pi, value = nash(P, method=method)
    assert exploitability(P, pi) < 1e-9 and value == pytest.approx(0.5, abs=1e-9)
    lam = pi[0] / ends[0, 0]  # pi = lam * ends[0] + (1 - lam) * ends[1]
    assert -1e-9 <= lam <= 1 + 1e-9
    np.testing.assert_allclose(pi, lam * ends[0] + (1 - lam) * ends[1], atol=1e-9)


@pytest.mark.parametrize("method", NASH_METHODS)
def test_five_voter_maximal_lottery(method):
    # 2 voters a≻b≻c, 2 voters b≻c≻a, 1 voter c≻a≻b: the maximal lottery is (0.6, 0.2, 0.2).
    P = voting_profile_matrix([[0, 1, 2], [1, 2, 0], [2, 0, 1]], [2, 2, 1])
    pi, _ = nash(P, method=method)
    np.testing.assert_allclose(pi, [0.6, 0.2, 0.2], atol=1e-9)


@pytest.mark.parametrize("method", NASH_METHODS)
def test_condorcet_winner_is_a_pure_equilibrium(method):
    pi, _ = nash(bradley_terry_matrix([0.0, 2.0, 1.0]), method=method)
    np.testing.assert_allclose(pi, [0, 1, 0], atol=1e-9)
    scores = np.random.default_rng(3).standard_normal(300)  # large: exercises auto's branches
    pi, _ = nash(bradley_terry_matrix(scores), method=method)
    np.testing.assert_allclose(pi, np.eye(300)[np.argmax(scores)], atol=1e-9)


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 21, 30])
def test_nash_agrees_with_nashpy_on_random_games(n):
    for seed in range(3):
        P = random_game(n, seed)
        row, _ = nashpy.Game(P - 0.5).linear_program()
        ref = np.clip(row, 0, None) / np.clip(row, 0, None).sum()
        for method in NASH_METHODS:
            pi, value = nash(P, method=method)
            assert abs(exploitability(P, pi) - exploitability(P, ref)) < 1e-6
            assert exploitability(P, pi) < 1e-8
            assert value == pytest.approx(0.5 - exploitability(P, pi))
        if n % 2:  # odd n: random skew games have a unique equilibrium (odd support)
            np.testing.assert_allclose(nash(P)[0], ref, atol=1e-6)


@pytest.mark.parametrize("method", ["auto", "interior-point", "support-generation"])
def test_large_games_are_solved_to_certified_precision(method):
    for P in (random_game(250, 0), bt_mixture_matrix(250, scale=10.0, rng=1)[0]):
        pi, _ = nash(P, method=method)
        assert exploitability(P, pi) < 1e-9
        assert pi.min() >= 0 and pi.sum() == pytest.approx(1.0)


def test_degenerate_games_still_get_an_equilibrium():
    ties = np.full((5, 5), 0.5)  # every policy is an equilibrium
    copies = dice_matrix([[0, 0, 3, 3], [0, 0, 3, 3], [1, 1, 1, 4], [2, 2, 2, 2]])
    for P in (ties, copies):
        for method in NASH_METHODS:
            pi, _ = nash(P, method=method)
            assert exploitability(P, pi) < 1e-9


# ----------------------------------------------------------------------------- regularised
def test_regularized_nash_solves_its_fixed_point_equation_like_scipy_root():
    rng = np.random.default_rng(0)
    P, mu = MIXTURE_20, random_policy(20, rng)
    for tau in (1.0, 0.1, 0.02):
        pi = regularized_nash(P, tau, mu)
        np.testing.assert_allclose(pi, softmax(np.log(mu) + P @ pi / tau), atol=1e-11)
        # an independent solver on the same equation, started from its answer's neighbourhood
        sol = root(lambda z, t=tau: z - np.log(mu) - P @ softmax(z) / t + np.log(np.sum(
            mu * np.exp(P @ softmax(z) / t))), np.log(pi) + 0.01 * rng.standard_normal(20))
        np.testing.assert_allclose(softmax(sol.x), pi, atol=1e-8)


def test_regularized_bias_shrinks_with_tau_and_matches_the_reference_rps_value():
    P = rock_paper_scissors()
    pi0 = np.array([0.6, 0.3, 0.1])
    # derived here independently: the regularised equilibrium solves z = log mu + P softmax(z) / tau
    # (up to a constant); scipy's root finder from the uniform point, exploitability written out
    sol = root(lambda z: z - np.log(pi0) - P @ softmax(z) / 0.1 + np.log(np.sum(pi0 * np.exp(P @ softmax(z) / 0.1))),
               np.zeros(3))
    expected = np.max(P @ softmax(sol.x)) - 0.5
    assert sol.success and expected > 0.05
    assert exploitability(P, regularized_nash(P, 0.1, pi0)) == pytest.approx(expected, abs=5e-5)
    floors = [exploitability(MIXTURE_20, regularized_nash(MIXTURE_20, t)) for t in (1, 0.3, 0.1, 0.03)]
    assert np.all(np.diff(floors) < 0) and floors[-1] < 0.05


def test_mmd_converges_to_the_regularised_equilibrium_with_its_magnet():
    rng = np.random.default_rng(1)
    P, pi0 = random_game(6, 4), random_policy(6, rng)
    h = run_dynamics(P, "mmd", 2000, pi0, eta=1.0, alpha=0.2)
    np.testing.assert_allclose(h.last[-1], regularized_nash(P, 0.2, pi0), atol=1e-9)


def test_constant_step_nash_md_converges_to_temperature_tau_over_one_minus_eta_tau():
    # Fixed point of π^μ ∝ π^{1−ητ}μ^{ητ}, π' ∝ π^μ exp(ηPπ^μ): π^μ ∝ μ exp(Pπ^μ (1−ητ)/τ).
    rng = np.random.default_rng(2)
    P, pi0 = random_game(5, 7), random_policy(5, rng)
    eta, tau = 1.0, 0.3
    dyn = make_dynamics("nash_md", P, eta=eta, tau=tau)
    dyn.reset(pi0)
    for _ in range(3000):
        dyn.step()
    mixture = pi0 ** (eta * tau) * dyn.pi ** (1 - eta * tau)
    mixture /= mixture.sum()
    np.testing.assert_allclose(mixture, regularized_nash(P, tau / (1 - eta * tau), pi0), atol=1e-9)


# ----------------------------------------------------------------------------- DNO
def test_soft_policy_iteration_is_sppo_and_hedge_with_step_one_over_eta():
    rng = np.random.default_rng(3)
    P, pi = random_game(7, 1), random_policy(7, rng)
    eta = 0.25
    weights = pi * np.exp((P @ pi) / eta)
    expected = weights / weights.sum()  # eq. 9, written out
    np.testing.assert_allclose(soft_policy_iteration_step(P, pi, eta), expected, atol=1e-14)
    for method, params in [("dno_spi", {"eta": eta}), ("sppo", {"eta": 1 / eta}),
                           ("hedge", {"eta": 1 / eta})]:
        dyn = make_dynamics(method, P, **params)
        dyn.reset(pi)
        np.testing.assert_allclose(dyn.step(), expected, atol=1e-14)


@pytest.mark.parametrize("eta", [0.05, 0.3, 2.0])
def test_monotonic_improvement_bound_and_exact_identity(eta):
    """P(π_{t+1} ≻ π_t) = ½ + η[KL(π_{t+1}‖π_t) + KL(π_t‖π_{t+1})] ≥ ½ + η KL(π_{t+1}‖π_t)."""
    rng = np.random.default_rng(4)
    for seed in range(5):
        P = random_game(12, seed)
        h = run_dynamics(P, "dno_spi", 50, random_policy(12, rng, 0.5), eta=eta)
        for prev, new in zip(h.last[:-1], h.last[1:], strict=True):
            win = new @ P @ prev
            forward, backward = kl_divergence(new, prev), kl_divergence(prev, new)
            assert win >= 0.5 + eta * forward - 1e-12
            assert win == pytest.approx(0.5 + eta * (forward + backward), abs=1e-10)


def test_dno_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    y1, y2 = rng.integers(0, 6, 40), rng.integers(0, 6, 40)
    z = rng.uniform(size=40)
    for l2 in (0.0, 2.0):
        err = check_grad(lambda u, l2=l2: dno_regression_loss(u, y1, y2, z, 0.7, l2)[0],
                         lambda u, l2=l2: dno_regression_loss(u, y1, y2, z, 0.7, l2)[1],
                         rng.standard_normal(6))
        assert err < 1e-6


@pytest.mark.parametrize("mu_kind", ["on-policy", "off-policy"])
def test_population_minimiser_of_the_dno_loss_is_the_soft_policy_iteration_step(mu_kind):
    """Every pair weighted by μ(y1)μ(y2), exact soft labels: minimising eq. 8 over softmax
    logits gives π_t exp(r_t/η)/Z for any μ with full support (log Z cancels in pairs)."""
    rng = np.random.default_rng(6)
    P, pi_t, eta = MIXTURE_20, random_policy(20, rng), 0.5
    mu = pi_t if mu_kind == "on-policy" else random_policy(20, rng)
    n = 20
    y1, y2 = np.divmod(np.arange(n * n), n)
    weights = mu[y1] * mu[y2]
    r = P @ pi_t
    z = expit(r[y1] - r[y2])
    target = soft_policy_iteration_step(P, pi_t, eta)

    def expected_loss(theta):  # written independently of dno_regression_loss
        log_ratio = theta - np.log(np.sum(np.exp(theta))) - np.log(pi_t)
        d = eta * (log_ratio[y1] - log_ratio[y2])
        return -np.sum(weights * (z * log_expit(d) + (1 - z) * log_expit(-d)))

    res = minimize(expected_loss, np.log(pi_t), method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
    np.testing.assert_allclose(softmax(res.x), target, atol=1e-6)
    u = fit_dno_regression(n, y1, y2, z, eta, weights=weights / weights.sum())
    np.testing.assert_allclose(pi_t * np.exp(u) / np.sum(pi_t * np.exp(u)), target, atol=1e-9)


def test_sampled_dno_with_exact_soft_labels_recovers_the_exact_step():
    # Noiseless labels: once the sampled pairs connect every response, the fit is exact.
    rng = np.random.default_rng(7)
    P, pi = MIXTURE_20, random_policy(20, rng)
    new = dno_regression_step(P, pi, 0.5, 5000, rng, sampling=np.full(20, 1 / 20))
    np.testing.assert_allclose(new, soft_policy_iteration_step(P, pi, 0.5), atol=1e-8)


def test_sampled_dno_error_falls_like_one_over_n_with_bernoulli_labels():
    rng = np.random.default_rng(8)
    P, pi = MIXTURE_20, random_policy(20, rng, 5.0)
    target = soft_policy_iteration_step(P, pi, 1.0)
    errors = []
    for N in (1000, 16000):
        errors.append(np.mean([
            total_variation(dno_regression_step(P, pi, 1.0, N, np.random.default_rng([N, r]),
                                                labels="bernoulli", l2=1.0), target) ** 2
            for r in range(60)]))
    slope = np.log(errors[1] / errors[0]) / np.log(16)
    assert -1.25 < slope < -0.75, slope


# ----------------------------------------------------------------------------- dynamics
def test_last_iterate_cycles_for_spi_but_converges_for_optimistic_methods_on_rps():
    P, pi0 = rock_paper_scissors(), np.array([0.6, 0.3, 0.1])
    spi = run_dynamics(P, "dno_spi", 200, pi0, eta=1.0)
    assert spi.last_exploitability[-1] > 0.4 and spi.average_exploitability[-1] < 0.03
    assert np.all(np.diff(spi.last_kl) > 0)  # KL(π*‖π_t) grows: it spirals outward
    for method, params in [("optimistic_hedge", {"eta": 2.0}), ("extragradient", {"eta": 2.0}),
                           ("mmd", {"eta": 1.0, "alpha": 0.1, "reset_every": 20})]:
        h = run_dynamics(P, method, 200, pi0, **params)
        assert h.last_exploitability[-1] < 0.015, method


def test_replicator_euler_drift_in_the_conserved_kl_shrinks_with_the_step():
    # Continuous time conserves KL(π*‖π); Euler's drift over a fixed time is O(h).
    P, pi0 = rock_paper_scissors(), np.array([0.5, 0.3, 0.2])
    drift = []
    for h in (0.1, 0.01):
        hist = run_dynamics(P, "replicator", round(5 / h), pi0, step=h)
        drift.append(hist.last_kl[-1] - hist.last_kl[0])
    assert drift[0] > 0 and drift[1] > 0
    assert drift[1] / drift[0] == pytest.approx(0.1, rel=0.2)


def test_fictitious_play_last_iterate_is_pure_and_its_average_converges():
    h = run_dynamics(MIXTURE_20, "fictitious_play", 300)
    assert np.all(np.isin(h.last[1:], [0.0, 1.0]))
    assert h.average_exploitability[-1] < 0.02


def test_history_records_both_iterates_consistently():
    rng = np.random.default_rng(9)
    P, pi0 = random_game(6, 2), random_policy(6, rng)
    for method in METHODS:
        h = run_dynamics(P, method, 25, pi0, **({"rng": 0} if method == "dno_sampled" else {}))
        assert h.last.shape == h.average.shape == (26, 6)
        np.testing.assert_allclose(h.last.sum(axis=1), 1.0)
        # the paper's mixture of iterates: after t iterations, unif(π_1..π_t), without π_{t+1}
        np.testing.assert_allclose(h.average[-1], h.last[:-1].mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(h.average[1], h.last[0], atol=1e-15)
        np.testing.assert_allclose(h.average[0], h.last[0], atol=1e-15)
        np.testing.assert_allclose(h.average[7], h.last[:7].mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(h.average_exploitability, [exploitability(P, p) for p in h.average])
        np.testing.assert_allclose(h.last_exploitability, [exploitability(P, p) for p in h.last])
        np.testing.assert_allclose(h.average_kl[5], kl_divergence(h.equilibrium, h.average[5]))


def test_step_size_table_covers_the_conventions():
    table = step_size_table()
    assert table.count("\n") == len(STEP_SIZE_CONVENTIONS) + 1
    for name in ("DNO", "SPPO", "Nash-MD", "DPO", "MMD"):
        assert name in table


# ----------------------------------------------------------------------------- bad input
def test_bad_preference_matrices_are_named():
    with pytest.raises(PreferenceMatrixError, match="square"):
        nash(np.full((2, 3), 0.5))
    with pytest.raises(PreferenceMatrixError, match="NaN"):
        exploitability(np.array([[0.5, np.nan], [np.nan, 0.5]]), [0.5, 0.5])
    with pytest.raises(PreferenceMatrixError, match="P \\+ Pᵀ = 1"):
        run_dynamics(np.array([[0.5, 0.9], [0.9, 0.5]]), "dno_spi", 3)


def test_bad_policies_are_named():
    P = rock_paper_scissors()
    with pytest.raises(PolicyError, match="sum to 1"):
        exploitability(P, [0.5, 0.5, 0.5])
    with pytest.raises(PolicyError, match="3 probabilities"):
        exploitability(P, [1.0])
    with pytest.raises(PolicyError, match="3 probabilities"):
        run_dynamics(P, "dno_spi", 5, pi0=[0.5, 0.5], eta=1.0)
    with pytest.raises(PolicyError, match="non-finite"):
        soft_policy_iteration_step(P, [np.nan, 0.5, 0.5], 1.0)


def test_bad_settings_are_named():
    P = rock_paper_scissors()
    with pytest.raises(UnknownMethodError, match=r"unknown dynamics 'dno'.*dno_spi"):
        run_dynamics(P, "dno", 5)
    with pytest.raises(GameParameterError, match="unknown nash method"):
        nash(P, method="simplex")
    with pytest.raises(GameParameterError, match="eta must be a finite number > 0"):
        make_dynamics("dno_spi", P, eta=-1.0)
    with pytest.raises(GameParameterError, match="eta must be a finite number > 0"):
        soft_policy_iteration_step(P, np.full(3, 1 / 3), 0.0)
    with pytest.raises(GameParameterError, match="tau must be a positive number"):
        regularized_nash(P, -0.1)
    with pytest.raises(GameParameterError, match="eta \\* tau <= 1"):
        make_dynamics("nash_md", P, eta=5.0, tau=0.5)
    with pytest.raises(GameParameterError, match="<= 2"):
        make_dynamics("replicator", P, step=3.0)
    with pytest.raises(GameParameterError, match="T must be a positive integer"):
        run_dynamics(P, "hedge", 0)
    with pytest.raises(GameParameterError, match="n_pairs must be a positive integer"):
        make_dynamics("dno_sampled", P, n_pairs=0)
    with pytest.raises(GameParameterError, match="labels must be"):
        dno_regression_step(P, np.full(3, 1 / 3), 1.0, 10, np.random.default_rng(0), labels="hard")
    with pytest.raises(GameParameterError, match="bad parameters for 'sppo'"):
        make_dynamics("sppo", P, beta=1.0)
