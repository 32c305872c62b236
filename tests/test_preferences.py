from fractions import Fraction
from itertools import product

import numpy as np
import pytest

from dnolab.preferences import (
    PreferenceMatrixError,
    annotator_panel_game,
    blade_chest_matrix,
    bradley_terry_matrix,
    bt_annotators_matrix,
    bt_mixture_matrix,
    condorcet_profile,
    cyclic_tournament,
    dice_matrix,
    efron_dice,
    five_voter_profile,
    from_skew,
    from_win_counts,
    length_quality_matrix,
    policy_preference,
    random_blade_chest,
    random_length_quality,
    rock_paper_scissors,
    validate_preference_matrix,
    voting_profile_matrix,
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


# --- sources of intransitivity (notebook 02) ---------------------------------------------------

GENERATORS = {
    "rps": rock_paper_scissors,
    "condorcet average": lambda: condorcet_profile("average"),
    "condorcet majority": lambda: condorcet_profile("majority"),
    "five voters average": lambda: five_voter_profile("average"),
    "five voters majority": lambda: five_voter_profile("majority"),
    "efron dice": efron_dice,
    "length-quality": lambda: length_quality_matrix([300, 100, 200], [0.0, 2.0, 1.0]),
    "random length-quality": lambda: random_length_quality(15, rng=1)[0],
    "annotators average": lambda: bt_mixture_matrix(15, rng=2)[0],
    "annotators majority": lambda: bt_mixture_matrix(15, rng=2, rule="majority")[0],
    "blade-chest inner": lambda: random_blade_chest(12, dim=3, rng=4)[0],
    "blade-chest dist": lambda: random_blade_chest(12, dim=3, model="dist", rng=4)[0],
    "cyclic tournament": lambda: cyclic_tournament(9, 0.8),
}


@pytest.mark.parametrize("name", list(GENERATORS))
def test_every_generator_gives_a_valid_preference_matrix(name):
    P = GENERATORS[name]()
    np.testing.assert_allclose(P + P.T, 1.0, atol=1e-12)
    np.testing.assert_array_equal(np.diag(P), 0.5)
    assert ((P >= 0) & (P <= 1)).all()


def test_efron_dice_exact_with_fractions():
    # Independent route: enumerate all 36 face pairs with exact rational arithmetic.
    faces = [[4, 4, 4, 4, 0, 0], [3] * 6, [6, 6, 2, 2, 2, 2], [5, 5, 5, 1, 1, 1]]
    P = efron_dice()
    for i in range(4):
        j = (i + 1) % 4
        wins = sum(Fraction(1, 36) for a, b in product(faces[i], faces[j]) if a > b)
        assert wins == Fraction(2, 3)
        assert P[i, j] == float(Fraction(2, 3))
    # A vs C and B vs D are not part of the cycle: A beats C 4/9 of the time, B and D tie at 1/2.
    assert P[0, 2] == pytest.approx(4 / 9, abs=1e-15)
    assert P[1, 3] == pytest.approx(1 / 2, abs=1e-15)


def test_dice_ties_count_half():
    P = dice_matrix([[1, 2], [2, 3]])  # pairs: (1,2) lose, (1,3) lose, (2,2) tie, (2,3) lose
    assert P[0, 1] == pytest.approx(0.125)


def test_condorcet_and_five_voter_profiles_by_hand():
    P = condorcet_profile()
    np.testing.assert_allclose([P[0, 1], P[1, 2], P[2, 0]], [2 / 3] * 3, atol=1e-15)
    M = condorcet_profile("majority")
    np.testing.assert_array_equal([M[0, 1], M[1, 2], M[2, 0]], [1.0, 1.0, 1.0])
    F = five_voter_profile()
    np.testing.assert_allclose([F[0, 1], F[1, 2], F[2, 0]], [3 / 5, 4 / 5, 3 / 5], atol=1e-15)


def test_five_voter_maximal_lottery_is_0_6_0_2_0_2():
    F = five_voter_profile()
    lottery = np.array([0.6, 0.2, 0.2])
    # Equilibrium condition A p = 0 for an interior mixture, checked by hand ...
    np.testing.assert_allclose((F - 0.5) @ lottery, 0.0, atol=1e-15)
    # ... and against an independent zero-sum solver.
    nashpy = pytest.importorskip("nashpy")
    row, _ = nashpy.Game(F - 0.5).linear_program()
    np.testing.assert_allclose(row, lottery, atol=1e-8)


def test_annotator_aggregation_average_and_majority():
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [2.0, 1.0, 3.0]])  # a Condorcet panel
    avg = bt_annotators_matrix(scores)
    expected = np.mean([1 / (1 + np.exp(-(s[:, None] - s[None, :]))) for s in scores], axis=0)
    np.testing.assert_allclose(avg, expected, atol=1e-15)
    maj = bt_annotators_matrix(scores, rule="majority")
    rankings = [list(np.argsort(-s)) for s in scores]
    np.testing.assert_array_equal(maj, voting_profile_matrix(rankings, rule="majority"))
    assert maj[0, 1] == maj[1, 2] == maj[2, 0] == 1.0
    # Weighted: one annotator holding 60 % decides every pair.
    dictator = bt_annotators_matrix(scores, weights=[0.6, 0.2, 0.2], rule="majority")
    np.testing.assert_array_equal(dictator, voting_profile_matrix([rankings[0]], rule="majority"))
    # Equal scores give half a vote each way; a 50/50 split is a tie.
    tie = bt_annotators_matrix(np.array([[1.0, 0.0], [0.0, 1.0]]), rule="majority")
    np.testing.assert_array_equal(tie, 0.5)


def test_bt_mixture_majority_uses_the_same_annotators():
    P_avg, s_avg = bt_mixture_matrix(10, rng=7)
    P_maj, s_maj = bt_mixture_matrix(10, rng=7, rule="majority")
    np.testing.assert_array_equal(s_avg, s_maj)
    np.testing.assert_allclose(P_avg, bt_annotators_matrix(s_avg, [0.4, 0.35, 0.25]), atol=1e-15)
    np.testing.assert_array_equal(P_maj, bt_annotators_matrix(s_maj, [0.4, 0.35, 0.25], "majority"))
    assert set(np.unique(P_maj)) <= {0.0, 0.5, 1.0}


def test_length_quality_rule():
    P = length_quality_matrix([300, 100, 200], [0.0, 2.0, 1.0], threshold=150)
    assert P[0, 1] == 1.0  # A is 200 tokens longer than B: length decides
    assert P[1, 2] == 1.0  # 100 apart: quality decides, B > C
    assert P[2, 0] == 1.0  # 100 apart: quality decides, C > A
    Q = length_quality_matrix([100, 120], [1.0, 1.0])
    assert Q[0, 1] == 0.5  # close lengths, equal quality: a coin flip
    with pytest.raises(ValueError, match="threshold"):
        length_quality_matrix([1, 2], [1, 2], threshold=0)
    with pytest.raises(ValueError, match="same length"):
        length_quality_matrix([1, 2, 3], [1, 2])


def test_blade_chest_matches_its_definition():
    rng = np.random.default_rng(0)
    B, C = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    inner = blade_chest_matrix(B, C, "inner")
    dist = blade_chest_matrix(B, C, "dist")
    for a in range(5):
        for b in range(5):
            m_inner = B[a] @ C[b] - B[b] @ C[a]
            m_dist = np.sum((B[b] - C[a]) ** 2) - np.sum((B[a] - C[b]) ** 2)
            assert inner[a, b] == pytest.approx(1 / (1 + np.exp(-m_inner)), abs=1e-14)
            assert dist[a, b] == pytest.approx(1 / (1 + np.exp(-m_dist)), abs=1e-14)
    # Blades and chests at 120° apart on a circle play rock-paper-scissors.
    angles = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
    blades = 3 * np.c_[np.cos(angles), np.sin(angles)]
    chests = 3 * np.c_[np.cos(angles + np.pi / 2), np.sin(angles + np.pi / 2)]
    P = blade_chest_matrix(blades, chests)
    assert (P[0, 1] > 0.5) == (P[1, 2] > 0.5) == (P[2, 0] > 0.5)
    assert abs(P[0, 1] - 0.5) > 0.4
    with pytest.raises(ValueError, match="'inner' or 'dist'"):
        blade_chest_matrix(B, C, "cosine")
    with pytest.raises(ValueError, match="shape"):
        blade_chest_matrix(B, C[:, :1])


def test_cyclic_tournament_everyone_wins_half():
    P = cyclic_tournament(7, 0.9)
    np.testing.assert_array_equal((P > 0.5).sum(axis=1), 3)
    assert P[0, 1] == 0.9 and P[0, 3] == 0.9 and P[0, 4] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="odd"):
        cyclic_tournament(6)
    with pytest.raises(ValueError, match="p_win"):
        cyclic_tournament(5, 0.4)


def test_generator_bad_input_is_named():
    with pytest.raises(ValueError, match="'average' or 'majority'"):
        bt_annotators_matrix(np.zeros((2, 3)), rule="borda")
    with pytest.raises(ValueError, match="'average' or 'majority'"):
        bt_mixture_matrix(4, rule="borda")
    with pytest.raises(ValueError, match="weights"):
        bt_annotators_matrix(np.zeros((2, 3)), weights=[1.0])
    with pytest.raises(ValueError, match="length_range"):
        random_length_quality(4, length_range=(5, 5))


def test_the_annotator_panel_game_is_one_game_for_every_notebook():
    P, scores = annotator_panel_game()
    Q, same_scores = bt_mixture_matrix(20, weights=(0.4, 0.35, 0.25), scale=10.0, rng=13)
    np.testing.assert_array_equal(P, Q)  # what notebooks 02 and 03 built by hand
    np.testing.assert_array_equal(scores, same_scores)
    assert P.shape == (20, 20) and scores.shape == (3, 20)
    from dnolab.games import nash
    from dnolab.intransitivity import count_cyclic_triples

    pi, _ = nash(P)
    assert np.flatnonzero(pi > 1e-9).tolist() == [0, 2, 3, 6, 9]  # the docstring's support of 5
    assert count_cyclic_triples(P) == 83
    majority, _ = annotator_panel_game(rule="majority")
    assert set(np.unique(majority[~np.eye(20, dtype=bool)])) <= {0.0, 1.0}
    assert not np.array_equal(annotator_panel_game(seed=0)[0], P)
