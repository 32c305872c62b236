import numpy as np
import pytest

from dnolab.games import exploitability, nash
from dnolab.preferences import bradley_terry_matrix, rock_paper_scissors


def test_rps_equilibrium_is_uniform_with_value_one_half():
    pi, value = nash(rock_paper_scissors())
    np.testing.assert_allclose(pi, 1 / 3, atol=1e-9)
    assert value == pytest.approx(0.5)
    assert exploitability(rock_paper_scissors(), pi) == pytest.approx(0.0, abs=1e-9)


def test_pure_response_in_rps_is_maximally_exploitable():
    assert exploitability(rock_paper_scissors(), [1, 0, 0]) == pytest.approx(0.5)


def test_condorcet_winner_is_a_pure_equilibrium():
    pi, _ = nash(bradley_terry_matrix([0.0, 2.0, 1.0]))
    np.testing.assert_allclose(pi, [0, 1, 0], atol=1e-9)


def test_policy_must_be_a_distribution():
    with pytest.raises(ValueError, match="sum to 1"):
        exploitability(rock_paper_scissors(), [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="3 probabilities"):
        exploitability(rock_paper_scissors(), [1.0])
