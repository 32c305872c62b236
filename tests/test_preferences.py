import numpy as np
import pytest

from dnolab.preferences import (
    PreferenceMatrixError,
    bradley_terry_matrix,
    bt_mixture_matrix,
    from_skew,
    from_win_counts,
    policy_preference,
    rock_paper_scissors,
    validate_preference_matrix,
    win_rates,
)


def test_rock_paper_scissors_is_a_valid_cycle():
    P = validate_preference_matrix(rock_paper_scissors())
    assert P[0, 2] == P[2, 1] == P[1, 0] == 1.0
    np.testing.assert_allclose(P + P.T, 1.0)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.full((2, 3), 0.5), "must be square"),
        (np.array([0.5, 0.5]), "2-D"),
        (np.array([[0.5]]), "at least 2"),
        (np.array([[0.5, np.nan], [0.5, 0.5]]), "NaN"),
        (np.array([[0.5, 1.2], [-0.2, 0.5]]), r"in \[0, 1\]"),
        (np.array([[0.5, 0.7], [0.7, 0.5]]), "P \\+ Pᵀ = 1"),
        (np.array([[0.4, 0.5], [0.5, 0.6]]), "P \\+ Pᵀ = 1"),
        ([["a", "b"], ["c", "d"]], "numeric"),
    ],
)
def test_invalid_matrices_name_the_problem(matrix, message):
    with pytest.raises(PreferenceMatrixError, match=message):
        validate_preference_matrix(matrix)


def test_bradley_terry_matrix_is_sigmoid_of_differences():
    s = np.array([0.3, -1.0, 2.0])
    P = bradley_terry_matrix(s)
    expected = 1 / (1 + np.exp(-(s[:, None] - s[None, :])))
    np.testing.assert_allclose(P, expected, atol=1e-15)
    validate_preference_matrix(P, atol=1e-15)


def test_mixture_of_annotators_is_valid_and_reproducible():
    P1, s1 = bt_mixture_matrix(12, rng=3)
    P2, _ = bt_mixture_matrix(12, rng=3)
    np.testing.assert_array_equal(P1, P2)
    assert s1.shape == (3, 12)
    validate_preference_matrix(P1)
    with pytest.raises(ValueError, match="sum to 1"):
        bt_mixture_matrix(5, weights=(0.5, 0.6))


def test_win_counts_and_skew_constructors():
    P = from_win_counts([[0, 3, 0], [1, 0, 0], [0, 0, 0]])
    assert P[0, 1] == 0.75 and P[1, 0] == 0.25 and P[0, 2] == 0.5
    A = np.array([[0, 0.2], [-0.2, 0]])
    np.testing.assert_allclose(from_skew(A), [[0.5, 0.7], [0.3, 0.5]])
    with pytest.raises(PreferenceMatrixError):
        from_win_counts([[0, -1], [1, 0]])


def test_policy_level_preferences():
    P = rock_paper_scissors()
    uniform = np.full(3, 1 / 3)
    np.testing.assert_allclose(win_rates(P, uniform), 0.5)
    assert policy_preference(P, [1, 0, 0], [0, 0, 1]) == 1.0
    with pytest.raises(ValueError, match="shape"):
        win_rates(P, [0.5, 0.5])


def test_efron_dice_each_beats_the_next_with_two_thirds():
    from dnolab.preferences import efron_dice

    P = efron_dice()
    for i in range(4):
        assert P[i, (i + 1) % 4] == pytest.approx(2 / 3, abs=1e-15)


def test_five_voter_profile_and_condorcet_profile():
    from dnolab.preferences import voting_profile_matrix

    P = voting_profile_matrix([[0, 1, 2], [1, 2, 0], [2, 0, 1]], counts=[2, 2, 1])
    np.testing.assert_allclose([P[0, 1], P[1, 2], P[2, 0]], [3 / 5, 4 / 5, 3 / 5])
    M = voting_profile_matrix([[0, 1, 2], [1, 2, 0], [2, 0, 1]], rule="majority")
    np.testing.assert_allclose([M[0, 1], M[1, 2], M[2, 0]], [1, 1, 1])
    with pytest.raises(ValueError, match="permutation"):
        voting_profile_matrix([[0, 0, 1]])
