"""Intransitivity diagnostics against brute force, closed forms and hand-computed answers."""

from fractions import Fraction
from itertools import combinations, permutations
from math import comb

import numpy as np
import pytest

from dnolab.bradley_terry import bt_fit_error
from dnolab.intransitivity import (
    bt_error,
    count_cyclic_triples,
    cyclic_energy_share,
    cyclic_triple_share,
    find_cycle,
    hodge_decomposition,
    intransitivity_summary,
    majority_relation,
)
from dnolab.preferences import (
    PreferenceMatrixError,
    bradley_terry_matrix,
    condorcet_profile,
    cyclic_tournament,
    efron_dice,
    five_voter_profile,
    from_skew,
    rock_paper_scissors,
)


def brute_force_cyclic_triples(P):
    """Look at every triple and both orientations of a 3-cycle."""
    n = P.shape[0]
    count = 0
    for i, j, k in combinations(range(n), 3):
        if any(P[a, b] > 0.5 and P[b, c] > 0.5 and P[c, a] > 0.5
               for a, b, c in ((i, j, k), (i, k, j))):
            count += 1
    return count


def random_preference(n, rng, tie_share=0.0):
    A = rng.uniform(-0.5, 0.5, (n, n))
    A = np.triu(A, 1)
    A[np.triu(rng.random((n, n)) < tie_share, 1)] = 0.0
    return from_skew(A - A.T)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("tie_share", [0.0, 0.3])
def test_cyclic_triples_vectorised_equals_brute_force(seed, tie_share):
    P = random_preference(9, np.random.default_rng(seed), tie_share)
    assert count_cyclic_triples(P) == brute_force_cyclic_triples(P)


@pytest.mark.parametrize("seed", range(5))
def test_cyclic_triples_kendall_formula_for_tournaments(seed):
    # Kendall & Babington Smith (1940): a tournament on n vertices with out-degrees d_i has
    # C(n, 3) − Σ_i C(d_i, 2) cyclic triples.
    P = random_preference(11, np.random.default_rng(100 + seed))
    out = (P > 0.5).sum(axis=1)
    assert count_cyclic_triples(P) == comb(11, 3) - sum(comb(int(d), 2) for d in out)


def test_rps_is_entirely_cyclic_and_bt_is_wrong_by_half():
    P = rock_paper_scissors()
    assert count_cyclic_triples(P) == 1 and cyclic_triple_share(P) == 1.0
    split = hodge_decomposition(P)
    assert split.cyclic_share == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(split.scores, 0.0, atol=1e-15)
    assert bt_fit_error(P)["mae"] == pytest.approx(0.5, abs=1e-9)
    assert intransitivity_summary(P)["bt_mae"] == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_pure_bradley_terry_has_no_cycles(seed):
    P = bradley_terry_matrix(np.random.default_rng(seed).standard_normal(15))
    assert count_cyclic_triples(P) == 0
    assert find_cycle(P) is None
    # On P − 1/2 the sigmoid bends the ranking a little, so the cyclic share is small, not 0 ...
    assert hodge_decomposition(P).cyclic_share < 0.05
    # ... while on the logit scale a BT matrix is exactly a gradient flow.
    assert hodge_decomposition(P, flow="logit").cyclic_share < 1e-20
    np.testing.assert_allclose(hodge_decomposition(P, flow="logit").cyclic, 0.0, atol=1e-12)


def test_condorcet_profile_is_all_curl():
    split = hodge_decomposition(condorcet_profile())
    assert split.cyclic_share == pytest.approx(1.0, abs=1e-15)


def test_five_voter_profile_split_by_hand():
    # A = [[0, 1/10, −1/10], [−1/10, 0, 3/10], [1/10, −3/10, 0]]; row means s = (0, 1/15, −1/15).
    # Gradient flows on the 3 edges: −1/15, 1/15, 2/15: energy 6/225. Total energy 11/100.
    split = hodge_decomposition(five_voter_profile())
    np.testing.assert_allclose(split.scores, [0, 1 / 15, -1 / 15], atol=1e-15)
    expected = 1 - Fraction(6, 225) / Fraction(11, 100)
    assert expected == Fraction(25, 33)
    assert split.cyclic_share == pytest.approx(float(expected), abs=1e-14)


def test_hodge_complete_graph_closed_form_and_lstsq_on_incidence_matrix():
    rng = np.random.default_rng(7)
    P = random_preference(8, rng)
    A = P - 0.5
    split = hodge_decomposition(P)
    # Closed form on the complete graph with equal weights: s_i = mean_j A_ij.
    np.testing.assert_allclose(split.scores, A.mean(axis=1), atol=1e-14)
    # Independent route: least squares on the edge-vertex incidence matrix.
    edges = list(combinations(range(8), 2))
    D = np.zeros((len(edges), 8))
    for e, (i, j) in enumerate(edges):
        D[e, i], D[e, j] = 1.0, -1.0
    y = np.array([A[i, j] for i, j in edges])
    s = np.linalg.lstsq(D, y, rcond=None)[0]
    np.testing.assert_allclose(split.scores, s - s.mean(), atol=1e-12)
    residual = y - D @ s
    assert split.cyclic_energy == pytest.approx(residual @ residual, rel=1e-12)
    assert split.energy == pytest.approx(split.gradient_energy + split.cyclic_energy, rel=1e-12)


def test_hodge_weighted_incomplete_graph_against_weighted_lstsq():
    rng = np.random.default_rng(11)
    n = 7
    P = random_preference(n, rng)
    A = P - 0.5
    w = np.triu(rng.uniform(0.2, 3.0, (n, n)), 1)
    w[0, 3] = w[2, 5] = w[1, 6] = 0.0  # pairs never compared
    w = w + w.T
    split = hodge_decomposition(P, weights=w)
    edges = [(i, j) for i, j in combinations(range(n), 2) if w[i, j] > 0]
    D = np.zeros((len(edges), n))
    for e, (i, j) in enumerate(edges):
        D[e, i], D[e, j] = 1.0, -1.0
    sw = np.sqrt([w[i, j] for i, j in edges])
    y = np.array([A[i, j] for i, j in edges])
    s = np.linalg.lstsq(sw[:, None] * D, sw * y, rcond=None)[0]
    np.testing.assert_allclose(split.scores, s - s.mean(), atol=1e-12)
    # The cyclic part is divergence-free: Σ_j w_ij C_ij = 0 at every vertex.
    np.testing.assert_allclose((w * split.cyclic).sum(axis=1), 0.0, atol=1e-12)
    assert split.cyclic[0, 3] == A[0, 3]  # an uncompared pair is left entirely to the residual
    assert split.gradient[0, 3] == 0.0


def test_find_cycle_returns_a_real_shortest_cycle():
    P = efron_dice()
    cycle = find_cycle(P)
    assert cycle is not None and len(cycle) == 3
    for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        assert P[a, b] > 0.5
    assert find_cycle(rock_paper_scissors()) == [0, 2, 1]
    # A 4-cycle with ties across the diagonals has no cyclic triple but still a cycle.
    A = np.zeros((4, 4))
    for i in range(4):
        A[i, (i + 1) % 4] = 0.3
    P4 = from_skew(A - A.T)
    assert count_cyclic_triples(P4) == 0
    cycle = find_cycle(P4)
    assert sorted(cycle) == [0, 1, 2, 3]
    for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        assert P4[a, b] > 0.5


def test_find_cycle_agrees_with_brute_force_acyclicity():
    # A relation has no cycle iff some ordering puts every edge forward; check on small cases.
    rng = np.random.default_rng(3)
    for _ in range(30):
        P = random_preference(5, rng, tie_share=0.4)
        M = majority_relation(P)
        acyclic = any(all(not M[order[b], order[a]] for a in range(5) for b in range(a + 1, 5))
                      for order in permutations(range(5)))
        assert (find_cycle(P) is None) == acyclic


def test_cyclic_tournament_has_no_ranking_at_all():
    P = cyclic_tournament(9, 0.8)
    assert cyclic_energy_share(P) == pytest.approx(1.0, abs=1e-14)
    assert bt_fit_error(P)["mae"] == pytest.approx(0.3, abs=1e-9)


def test_bt_error_handles_a_certain_winner():
    # A strict order with certainty: the ML BT scores are infinite, the fitted probabilities are
    # not; the fallback must reach them, and the plain fit must refuse.
    order = np.array([3, 0, 2, 1])
    rank = np.empty(4, dtype=int)
    rank[order] = np.arange(4)
    P = np.where(rank[:, None] < rank[None, :], 1.0, 0.0)
    np.fill_diagonal(P, 0.5)
    with pytest.raises(ValueError, match="infinite"):
        bt_fit_error(P)
    err = bt_error(P)
    assert err["l2"] > 0 and err["mae"] < 0.01 and err["backwards_share"] == 0.0
    summary = intransitivity_summary(P)
    assert summary["cyclic_triples"] == 0 and summary["cyclic_energy_share"] < 0.2


def test_bad_input_raises_named_errors():
    with pytest.raises(PreferenceMatrixError, match="P \\+ Pᵀ = 1"):
        count_cyclic_triples(np.array([[0.5, 0.9], [0.9, 0.5]]))
    with pytest.raises(PreferenceMatrixError, match="square"):
        hodge_decomposition(np.full((2, 3), 0.5))
    with pytest.raises(PreferenceMatrixError, match="symmetric"):
        hodge_decomposition(rock_paper_scissors(), weights=np.triu(np.ones((3, 3))))
    with pytest.raises(PreferenceMatrixError, match="non-negative"):
        hodge_decomposition(rock_paper_scissors(), weights=-np.ones((3, 3)))
    with pytest.raises(ValueError, match="'probability' or 'logit'"):
        hodge_decomposition(rock_paper_scissors(), flow="log-odds")
    with pytest.raises(ValueError, match="tol"):
        majority_relation(rock_paper_scissors(), tol=-1)
