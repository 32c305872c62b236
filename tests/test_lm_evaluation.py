"""Evaluation statistics: intervals, the mixture of iterates, length control, seed intervals."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from dnolab.lm.evaluation import length_controlled_win_rate, mean_interval, mixture_samples
from dnolab.lm.experiments import seed_interval


def test_mean_interval_is_normal_approximation_over_prompts():
    x = np.array([0.2, 0.4, 0.9, np.nan, 0.5])
    out = mean_interval(x)
    valid = x[~np.isnan(x)]
    assert out["n"] == 4 and out["mean"] == pytest.approx(valid.mean())
    assert out["ci95"] == pytest.approx(1.96 * valid.std(ddof=1) / 2)


def test_seed_interval_matches_scipy_t_interval():
    x = [0.41, 0.47, 0.44]
    low, high = stats.t.interval(0.95, df=2, loc=np.mean(x), scale=stats.sem(x))
    out = seed_interval(x)
    assert out["mean"] - out["ci95"] == pytest.approx(low) and out["mean"] + out["ci95"] == pytest.approx(high)
    assert np.isnan(seed_interval([0.5])["ci95"])


def test_mixture_of_iterates_draws_each_slot_from_one_iterate_uniformly():
    iterates = [{i: [f"it{t}-p{i}-s{j}" for j in range(2)] for i in range(3000)} for t in range(3)]
    mix = mixture_samples(iterates, seed=0)
    picks = [int(r.split("-")[0][2:]) for rs in mix.values() for r in rs]
    assert all(r.endswith(f"s{j}") for rs in mix.values() for j, r in enumerate(rs))
    shares = np.bincount(picks, minlength=3) / len(picks)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.02)


def test_length_control_recovers_the_win_rate_at_equal_length():
    rng = np.random.default_rng(0)
    d = rng.integers(-6, 7, size=4000).astype(float)
    groups = rng.integers(0, 2, size=4000)
    theta = np.array([-0.5, 0.8])
    phi = 2.0
    p = expit(theta[groups] + phi * np.tanh(d / d.std()))  # exact soft labels from the model
    fit = length_controlled_win_rate(p, d, groups)
    assert fit["length_slope"] == pytest.approx(phi, abs=1e-3)
    assert fit["lc_win_rate"][0] == pytest.approx(expit(-0.5), abs=1e-4)
    assert fit["lc_win_rate"][1] == pytest.approx(expit(0.8), abs=1e-4)
    with pytest.raises(ValueError, match="equal length"):
        length_controlled_win_rate([0.5], [1.0, 2.0])
