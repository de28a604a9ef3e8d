"""Metrics against values worked out by hand (and by brute force where that is cheap)."""

import itertools
import math
import random
import re

import pytest

from alphaloop.evals.metrics import (
    elo_from_results,
    majority_vote,
    mean_ci,
    pass_at_k,
    pass_hat_k,
    wilson_interval,
)


def test_pass_at_k_hand_values():
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # only 2 wrong samples: every 3-subset has a correct one
    assert pass_at_k(10, 10, 10) == 1.0


def test_pass_at_k_matches_brute_force_subsets():
    n, c, k = 7, 3, 3
    outcomes = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(outcomes, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
    assert pass_hat_k(n, c, k) == pytest.approx(sum(all(s) for s in subsets) / len(subsets))


def test_pass_at_k_is_stable_for_large_n():
    # C(2000, 1000) overflows floats; the product form does not
    value = pass_at_k(2000, 10, 1000)
    assert 0.99 < value <= 1.0
    assert pass_at_k(2000, 1, 1) == pytest.approx(1 / 2000)


def test_pass_hat_k_hand_values():
    assert pass_hat_k(5, 2, 2) == pytest.approx(1 / 10)  # C(2,2)/C(5,2)
    assert pass_hat_k(5, 3, 2) == pytest.approx(3 / 10)  # C(3,2)/C(5,2)
    assert pass_hat_k(5, 1, 2) == 0.0
    assert pass_hat_k(4, 3, 1) == pytest.approx(pass_at_k(4, 3, 1)) == pytest.approx(0.75)


@pytest.mark.parametrize("n,c,k,needle", [(5, 2, 6, "k must be"), (5, 6, 1, "c (correct"),
                                          (0, 0, 1, "n (samples"),
                                          (5, 2, 0, "k must be"), (5, -1, 1, "c (correct")])
def test_pass_at_k_rejects_bad_counts(n, c, k, needle):
    for fn in (pass_at_k, pass_hat_k):
        with pytest.raises(ValueError, match=re.escape(needle)):
            fn(n, c, k)


def test_pass_at_k_rejects_non_integers():
    with pytest.raises(TypeError, match="k must be an int"):
        pass_at_k(5, 2, 2.0)


def test_majority_vote():
    assert majority_vote(["3", "4", "4", None, None, None]) == "4"  # None never wins
    assert majority_vote(["7", "5", "5", "7"]) == "7"  # tie: first seen
    assert majority_vote(["5", "7", "7", "5"]) == "5"
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None
    picks = {majority_vote(["a", "b"], rng=random.Random(seed)) for seed in range(20)}
    assert picks == {"a", "b"}  # a random tie-break reaches both
    assert majority_vote(["a", "b", "b"], rng=random.Random(0)) == "b"  # no tie: rng is irrelevant


def test_mean_ci_and_wilson():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(1.959963984540054 * 1.0 / math.sqrt(3))
    assert math.isnan(mean_ci([4.0])[1])
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci([])
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # not the normal interval's [0, 0]
    low, high = wilson_interval(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_elo_75_percent_is_about_191():
    results = [("strong", "weak", 1.0)] * 75 + [("weak", "strong", 1.0)] * 25
    ratings = elo_from_results(results, anchor="weak")
    assert ratings["weak"] == 0.0
    assert ratings["strong"] == pytest.approx(400 * math.log10(3), abs=0.5)  # 190.85


def test_elo_draws_count_half_and_anchor_shifts():
    # a draws b always; b scores (10 + 10 * 0.5) / 20 = 3/4 against c: c ~ 191 below both
    results = [("a", "b", 0.5)] * 20 + [("b", "c", 1.0)] * 10 + [("b", "c", 0.5)] * 10
    ratings = elo_from_results(results, anchor="a", anchor_elo=1000.0)
    assert ratings["a"] == 1000.0 and ratings["b"] == pytest.approx(1000.0, abs=0.5)
    assert ratings["b"] - ratings["c"] == pytest.approx(190.85, abs=1.0)
    centred = elo_from_results(results)
    assert sum(centred.values()) == pytest.approx(0.0, abs=1e-9)


def test_elo_undefeated_player_stays_finite_and_ordered():
    results = [("champ", "mid", 1.0)] * 10 + [("mid", "low", 1.0)] * 7 + [("low", "mid", 1.0)] * 3
    ratings = elo_from_results(results, anchor="low")
    assert all(math.isfinite(v) for v in ratings.values())
    assert ratings["champ"] > ratings["mid"] + 300 > ratings["low"] + 300


def test_elo_rejects_bad_results():
    with pytest.raises(ValueError, match="score_a"):
        elo_from_results([("a", "b", 2.0)])
    with pytest.raises(ValueError, match="itself"):
        elo_from_results([("a", "a", 1.0)])
    with pytest.raises(ValueError, match="anchor"):
        elo_from_results([("a", "b", 1.0)], anchor="z")
