import choix
import numpy as np
import pytest

from dnolab.bradley_terry import (
    bt_fit_error,
    bt_negative_log_likelihood,
    comparisons_to_wins,
    fit_bradley_terry,
    fit_bradley_terry_to_matrix,
    sample_comparisons,
)
from dnolab.preferences import bradley_terry_matrix, rock_paper_scissors


def test_fit_recovers_known_scores_from_bt_data():
    rng = np.random.default_rng(0)
    true = np.array([-1.5, -0.5, 0.0, 0.7, 1.3])
    true -= true.mean()
    W = sample_comparisons(bradley_terry_matrix(true), 40_000, rng)
    fit = fit_bradley_terry(W)
    np.testing.assert_allclose(fit.scores, true, atol=0.05)
    assert abs(fit.scores.mean()) < 1e-12


def test_fit_of_the_exact_bt_matrix_is_exact():
    true = np.array([2.0, 0.5, -0.5, -2.0])
    fit = fit_bradley_terry_to_matrix(bradley_terry_matrix(true))
    np.testing.assert_allclose(fit.scores, true, atol=1e-6)


def test_rock_paper_scissors_gets_equal_scores_and_error_one_half():
    err = bt_fit_error(rock_paper_scissors())
    np.testing.assert_allclose(err["scores"], 0.0, atol=1e-8)
    assert err["mae"] == pytest.approx(0.5)
    assert err["tied_share"] == 1.0 and err["backwards_share"] == 0.0


def test_agrees_with_choix_on_random_comparisons():
    """choix (an independent BT library) maximises the same penalised likelihood.

    choix penalises alpha·‖θ‖² (its code, not its docstring), which is our (l2/2)·‖s‖² with
    l2 = 2·alpha.
    """
    rng = np.random.default_rng(1)
    n = 6
    true = rng.standard_normal(n)
    W = sample_comparisons(bradley_terry_matrix(true), 3000, rng)
    data = [(i, j) for i in range(n) for j in range(n) for _ in range(int(W[i, j]))]
    alpha = 0.01
    theirs = choix.opt_pairwise(n, data, alpha=alpha, tol=1e-12)
    ours = fit_bradley_terry(W, l2=2 * alpha).scores
    np.testing.assert_allclose(ours, theirs - theirs.mean(), atol=1e-5)


def test_nll_matches_a_direct_sum():
    s = np.array([0.2, -0.4, 1.0])
    W = np.array([[0, 2, 1], [3, 0, 0], [0, 4, 0]], dtype=float)
    direct = sum(
        W[i, j] * np.log1p(np.exp(-(s[i] - s[j]))) for i in range(3) for j in range(3) if W[i, j]
    )
    assert bt_negative_log_likelihood(s, W) == pytest.approx(direct)


def test_separable_data_is_refused_without_a_prior():
    W = comparisons_to_wins([0, 0, 1], [1, 2, 2], 3)  # 0 never loses
    with pytest.raises(ValueError, match=r"infinite.*l2 > 0"):
        fit_bradley_terry(W)
    fit = fit_bradley_terry(W, l2=0.1)
    assert np.all(np.isfinite(fit.scores)) and fit.scores.argmax() == 0


@pytest.mark.parametrize(
    ("wins", "message"),
    [
        (np.ones((2, 3)), "square"),
        (np.array([[0, -1], [1, 0]]), "non-negative"),
        (np.array([[0, np.nan], [1, 0]]), "finite"),
        (np.zeros((3, 3)), "no comparisons"),
    ],
)
def test_bad_wins_raise(wins, message):
    with pytest.raises(ValueError, match=message):
        fit_bradley_terry(wins)


def test_comparisons_to_wins_validates_indices():
    with pytest.raises(ValueError, match="indices"):
        comparisons_to_wins([0, 5], [1, 2], 3)
    with pytest.raises(ValueError, match="winner == loser"):
        comparisons_to_wins([1], [1], 3)
