"""The GPM-style general preference model: its score, its fit, and what BT cannot do."""

import numpy as np
import pytest

from dnolab.bradley_terry import fit_bradley_terry, sample_comparisons
from dnolab.general_preference import (
    fit_general_preference,
    fit_general_preference_to_matrix,
    gpm_matrix,
    gpm_score_matrix,
    heldout_metrics,
    skew_block_matrix,
)
from dnolab.preferences import (
    PreferenceMatrixError,
    bradley_terry_matrix,
    cyclic_tournament,
    rock_paper_scissors,
)
from dnolab.utils import set_cpu_threads

set_cpu_threads(1)


def test_skew_block_matrix_layout():
    R = skew_block_matrix(4)
    expected = np.array([[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 0, -1], [0, 0, 1, 0]], dtype=float)
    np.testing.assert_array_equal(R, expected)
    for bad in (0, 3, 2.0):
        with pytest.raises(ValueError, match="even integer"):
            skew_block_matrix(bad)


def test_score_is_the_blockwise_signed_area():
    rng = np.random.default_rng(0)
    V = rng.standard_normal((6, 4))
    S = gpm_score_matrix(V)
    for i in range(6):
        for j in range(6):
            area = sum(V[i, a] * V[j, a + 1] - V[i, a + 1] * V[j, a] for a in (0, 2))
            assert S[i, j] == pytest.approx(area, abs=1e-13)
    np.testing.assert_allclose(S, -S.T, atol=1e-14)


def test_bradley_terry_is_the_rank_two_special_case():
    s = np.array([0.7, -1.2, 0.1, 2.0])
    V = np.c_[np.ones(4), -s]
    np.testing.assert_allclose(gpm_matrix(V), bradley_terry_matrix(s), atol=1e-14)


@pytest.mark.parametrize("n", [6, 7])
def test_any_skew_symmetric_matrix_is_representable(n):
    # Independent construction from the real Schur form S = Z T Zᵀ, where T is block-diagonal
    # with 2x2 blocks [[0, b], [-b, 0]] (and a zero 1x1 block when n is odd).
    from scipy.linalg import schur

    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, n))
    S = X - X.T
    T, Z = schur(S, output="real")
    V = np.zeros((n, 2 * (n // 2)))
    col, a = 0, 0
    while a < n - 1:
        b = T[a, a + 1]
        if abs(b) < 1e-12 and abs(T[a + 1, a]) < 1e-12:
            a += 1  # a zero eigenvalue: nothing to represent
            continue
        pair = Z[:, [a, a + 1]] if b > 0 else Z[:, [a + 1, a]]
        V[:, col:col + 2] = np.sqrt(abs(b)) * pair
        col, a = col + 2, a + 2
    np.testing.assert_allclose(gpm_score_matrix(V), S, atol=1e-10)


def test_three_vectors_at_120_degrees_play_rock_paper_scissors():
    angles = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
    V = 4.0 * np.c_[np.cos(angles), np.sin(angles)]
    P = gpm_matrix(V)
    # s(i, i+1) = 16 sin(120°) > 0: each beats the next, like RPS up to relabelling.
    for i in range(3):
        assert P[i, (i + 1) % 3] == pytest.approx(1 / (1 + np.exp(-16 * np.sin(2 * np.pi / 3))))


def test_fit_to_matrix_recovers_a_known_model():
    rng = np.random.default_rng(1)
    V_true = rng.standard_normal((8, 4))
    P = gpm_matrix(V_true)
    fit = fit_general_preference_to_matrix(P, dim=4, l2=0.0, seed=3)
    np.testing.assert_allclose(fit.matrix(), P, atol=2e-4)
    # Maximum likelihood: the fit is at least as likely as the truth that generated P.
    S = gpm_score_matrix(V_true)
    nll_true = -(P * np.log(1 / (1 + np.exp(-S)))).sum()
    assert fit.nll <= nll_true + 1e-6


def test_fit_represents_rock_paper_scissors():
    fit = fit_general_preference_to_matrix(rock_paper_scissors(), dim=2)
    Q = fit.matrix()
    assert Q[0, 2] > 0.99 and Q[2, 1] > 0.99 and Q[1, 0] > 0.99


def test_fit_is_deterministic_given_the_seed():
    P = cyclic_tournament(7, 0.85)
    W = sample_comparisons(P, 500, np.random.default_rng(0))
    a = fit_general_preference(W, dim=4, l2=1.0, seed=5)
    b = fit_general_preference(W, dim=4, l2=1.0, seed=5)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    c = fit_general_preference(W, dim=4, l2=1.0, seed=6)
    assert not np.array_equal(a.embeddings, c.embeddings)
    np.testing.assert_allclose(a.matrix(), c.matrix(), atol=1e-3)  # same optimum, other start


def test_objective_is_the_penalised_mean_negative_log_likelihood():
    P = cyclic_tournament(5, 0.8)
    W = sample_comparisons(P, 300, np.random.default_rng(2))
    fit = fit_general_preference(W, dim=2, l2=0.5, seed=0)
    S = gpm_score_matrix(fit.embeddings)
    nll = -(W * np.log(1 / (1 + np.exp(-S)))).sum()
    assert fit.nll == pytest.approx(nll, rel=1e-10)
    assert fit.objective == pytest.approx((nll + 0.25 * (fit.embeddings**2).sum()) / 300, rel=1e-10)
    np.testing.assert_allclose(fit.predict([0, 1], [2, 3]), fit.matrix()[[0, 1], [2, 3]])


@pytest.mark.parametrize("seed", range(3))
def test_general_model_learns_a_cycle_that_bt_cannot(seed):
    # Ground truth: 31 responses on a circle, each beats the next 15 with probability 0.9.
    # BT's best fit is 1/2 everywhere, so its direction is noise; GPM has the right shape.
    P = cyclic_tournament(31, 0.9)
    rng = np.random.default_rng(seed)
    train = sample_comparisons(P, 3000, rng)
    test = sample_comparisons(P, 20000, rng)
    gpm = heldout_metrics(fit_general_preference(train, dim=4, l2=1.0, seed=seed).matrix(), test, P)
    bt = heldout_metrics(fit_bradley_terry(train, l2=1.0).matrix(), test, P)  # the same prior
    assert gpm["accuracy"] >= 0.95, gpm
    assert bt["accuracy"] <= 0.55, bt
    assert gpm["log_loss"] < bt["log_loss"] - 0.2


def test_heldout_metrics_by_hand():
    Q = np.array([[0.5, 0.8, 0.5], [0.2, 0.5, 0.4], [0.5, 0.6, 0.5]])
    P = np.array([[0.5, 0.7, 0.3], [0.3, 0.5, 0.1], [0.7, 0.9, 0.5]])
    W = np.zeros((3, 3))
    W[0, 1], W[1, 0], W[0, 2], W[2, 1] = 3, 1, 2, 4  # 10 comparisons
    m = heldout_metrics(Q, W, P)
    loss = -(3 * np.log(0.8) + np.log(0.2) + 2 * np.log(0.5) + 4 * np.log(0.6)) / 10
    assert m["log_loss"] == pytest.approx(loss, rel=1e-12)
    assert m["label_accuracy"] == pytest.approx((3 + 0 + 2 * 0.5 + 4) / 10)
    # Truth: 0 ≻ 1 (Q agrees, 4 comparisons), 2 ≻ 0 (Q ties, 2), 2 ≻ 1 (Q agrees, 4).
    assert m["accuracy"] == pytest.approx((4 + 2 * 0.5 + 4) / 10)
    assert "accuracy" not in heldout_metrics(Q, W)


def test_bad_input_raises_named_errors():
    with pytest.raises(ValueError, match="square"):
        fit_general_preference(np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        fit_general_preference(-np.ones((3, 3)))
    with pytest.raises(ValueError, match="no comparisons"):
        fit_general_preference(np.eye(3))
    with pytest.raises(ValueError, match="even integer"):
        fit_general_preference(np.ones((3, 3)), dim=3)
    with pytest.raises(ValueError, match="l2"):
        fit_general_preference(np.ones((3, 3)), l2=-1)
    with pytest.raises(PreferenceMatrixError, match="P \\+ Pᵀ = 1"):
        fit_general_preference_to_matrix(np.full((3, 3), 0.9))
    with pytest.raises(PreferenceMatrixError):
        heldout_metrics(np.full((2, 2), 0.7), np.ones((2, 2)))
    with pytest.raises(ValueError, match="test_wins"):
        heldout_metrics(rock_paper_scissors(), np.ones((2, 2)))
    with pytest.raises(ValueError, match="no comparisons"):
        heldout_metrics(rock_paper_scissors(), np.zeros((3, 3)))
