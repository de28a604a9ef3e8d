"""Over-optimisation arithmetic: best-of-n KL (closed form against Monte Carlo, the plug-in
estimate), the unbiased best-of-n value estimator, and Gao et al.'s fits on synthetic curves."""

import itertools
import math
import random

import numpy as np
import pytest

from alphaloop.evals.overoptimisation import bon_expected, bon_kl_analytic, bon_kl_plugin, bon_weights, fit_gao


def test_bon_kl_closed_form_values():
    assert bon_kl_analytic(1) == 0.0
    assert bon_kl_analytic(2) == pytest.approx(math.log(2) - 0.5)
    assert bon_kl_analytic(256) == pytest.approx(math.log(256) - 255 / 256)
    with pytest.raises(ValueError, match="n: expected >= 1"):
        bon_kl_analytic(0)


@pytest.mark.parametrize("n", [2, 4, 16, 64])
def test_bon_kl_closed_form_matches_monte_carlo(n):
    # pi: uniform over M distinct responses ranked by reward. Draw best-of-n by actually drawing n
    # samples and keeping the best; average log pi_bon(y) - log pi(y) over those draws.
    m, trials = 100_000, 20_000
    rng = np.random.default_rng(n)
    best = rng.integers(1, m + 1, size=(trials, n)).max(axis=1)
    p_bon = (best / m) ** n - ((best - 1) / m) ** n
    estimate = float(np.mean(np.log(p_bon * m)))
    standard_error = float(np.std(np.log(p_bon * m)) / math.sqrt(trials))
    assert abs(estimate - bon_kl_analytic(n)) < 4 * standard_error + 1e-3


def test_plugin_kl_tends_to_closed_form_for_distinct_samples_and_is_lower_with_repeats():
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=50_000)
    for n in (2, 8, 32):
        assert bon_kl_plugin(distinct, n) == pytest.approx(bon_kl_analytic(n), abs=0.01)
    assert bon_kl_plugin([1.0] * 100, 16) == 0.0                       # one response: nothing to pick
    repeated = [0.0] * 60 + list(rng.normal(size=40) + 5)              # a common answer, then distinct ones
    assert 0 < bon_kl_plugin(repeated, 16) < bon_kl_analytic(16)
    assert bon_kl_plugin(rng.normal(size=64), 4096) <= math.log(64) + 1e-9


def test_bon_expected_is_the_mean_of_best_of_n_over_all_subsets():
    scores = [0.3, -1.0, 2.0, 0.7, 1.1, -0.2]
    values = [1.0, 0.0, 0.2, 0.5, 0.9, 0.4]
    for n in range(1, len(scores) + 1):
        subsets = list(itertools.combinations(range(len(scores)), n))
        exact = sum(values[max(s, key=lambda i: scores[i])] for s in subsets) / len(subsets)
        assert bon_expected(scores, values, n) == pytest.approx(exact)
    assert bon_weights(6, 2).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n: expected 1 <= n <= 6"):
        bon_weights(6, 7)


def test_bon_expected_shares_weight_among_equal_scores():
    # Two copies of one response (equal scores) with different values would be a broken scorer; equal
    # scores still split the pick evenly rather than by array order.
    assert bon_expected([1.0, 1.0], [0.0, 1.0], 2) == pytest.approx(0.5)
    assert bon_expected([1.0, 1.0], [0.0, 1.0], 1) == pytest.approx(0.5)


def test_gao_bon_fit_recovers_known_coefficients():
    d = np.linspace(0, 2.5, 12)
    fit = fit_gao(d, d * (1.0 - 0.2 * d), "bon")
    assert (fit.alpha, fit.beta, fit.r2) == pytest.approx((1.0, 0.2, 1.0))
    assert fit.d_peak == pytest.approx(2.5) and fit.gain_peak == pytest.approx(1.25)


def test_gao_rl_fit_recovers_known_coefficients_from_noisy_points():
    rng = random.Random(0)
    d = np.linspace(0.2, 8, 30)
    gain = d * (0.5 - 0.3 * np.log(d)) + np.array([rng.gauss(0, 0.01) for _ in d])
    fit = fit_gao(d, gain, "rl")
    assert fit.alpha == pytest.approx(0.5, abs=0.02) and fit.beta == pytest.approx(0.3, abs=0.01)
    assert fit.r2 > 0.99
    assert fit.d_peak == pytest.approx(math.exp(0.5 / 0.3 - 1), rel=0.1)
    assert fit.predict([1.0])[0] == pytest.approx(fit.alpha)


def test_gao_fit_without_a_turn_has_no_peak_and_bad_input_is_named():
    d = np.linspace(0.1, 2, 8)
    assert fit_gao(d, 0.5 * d + 0.1 * d * d, "bon").d_peak is None
    with pytest.raises(ValueError, match="form"):
        fit_gao(d, d, "ppo")
    with pytest.raises(ValueError, match="gain: expected one value per distance"):
        fit_gao(d, d[:3], "bon")
    with pytest.raises(ValueError, match="at least two points"):
        fit_gao([0.0, 1.0], [0.0, 1.0], "rl")
