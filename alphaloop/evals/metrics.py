"""Evaluation metrics: pure functions of counts and outcomes, each next to its paper's formula.

Why these and not just "accuracy":
  pass@k   capability: does *some* sample solve it? (what search and best-of-N can reach)
  pass^k   reliability: do *all* k tries solve it? (what a user relying on the agent sees)
  maj@k    what a verifier-free vote over k samples gets (self-consistency)
  Elo      strength of game agents from who-beat-whom, on a scale people know
(Gao et al.'s over-optimisation fits and best-of-n's KL live in `overoptimisation.py`.)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from alphaloop.search.voting import majority_vote  # noqa: F401  (maj@k: a metric here, a search there)

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile
ELO_SCALE = 400.0 / math.log(10.0)  # Elo points per natural-log unit of odds


def _check_counts(n: int, c: int, k: int) -> None:
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if n < 1:
        raise ValueError(f"n (samples per problem) must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c (correct samples) must be in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}] (k samples cannot be drawn from n), got {k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021, "Evaluating Large
    Language Models Trained on Code", eq. 1):

        pass@k = 1 - C(n - c, k) / C(n, k)

    the chance that at least one of k samples drawn without replacement from the n is correct.
    The binomials overflow for large n, so we use the product form from the paper's code:

        C(n - c, k) / C(n, k) = prod_{i = n - c + 1}^{n} (1 - k / i)
    """
    _check_counts(n, c, k)
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k: the chance that k trials *all* succeed (Yao et al. 2024, "tau-bench"), estimated
    without bias from n samples of which c are correct:

        pass^k = C(c, k) / C(n, k) = prod_{i=0}^{k-1} (c - i) / (n - i)

    pass^1 = pass@1 = c / n; as k grows pass^k falls fast for an agent that is right only most of
    the time, which is the point: it measures reliability, not capability.
    """
    _check_counts(n, c, k)
    if c < k:
        return 0.0
    i = np.arange(k, dtype=np.float64)
    return float(np.prod((c - i) / (n - i)))


def mean_ci(values: Sequence[float], z: float = Z_95) -> tuple[float, float]:
    """(mean, half-width of a ~95% interval) by the normal approximation: z * s / sqrt(m), with s
    the sample standard deviation (ddof = 1). The half-width is nan for a single value, where the
    spread is unknown. For a proportion near 0 or 1 prefer `wilson_interval`."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        raise ValueError("values must be non-empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite numbers")
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan
    return mean, float(z * x.std(ddof=1) / math.sqrt(x.size))


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927) for a success rate p = successes / n:

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    Unlike the normal interval it stays inside [0, 1] and is not zero-width at 0/n or n/n, which
    is exactly where small evals live."""
    if n < 1:
        raise ValueError(f"n (trials) must be >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def elo_from_results(
    results: Sequence[tuple[Hashable, Hashable, float]],
    anchor: Hashable | None = None,
    anchor_elo: float = 0.0,
    prior: float = 1e-3,
    max_iter: int = 200,
) -> dict[Any, float]:
    """Maximum a posteriori Bradley-Terry ratings on the Elo scale (Bradley & Terry 1952; Elo 1978).

    Each result (a, b, s) is one game with a's score s in [0, 1] (1 win, 0.5 draw, 0 loss). With
    theta the ratings in natural-log-odds units (Elo = theta * 400 / ln 10):

        P(a beats b) = sigma(theta_a - theta_b)
        log L        = sum s log sigma(theta_a - theta_b) + (1 - s) log sigma(theta_b - theta_a)
                       - prior / 2 * sum_i theta_i^2

    A draw is half a win and half a loss. The tiny Gaussian prior makes the maximum unique and
    finite even for a player that never lost (plain maximum likelihood sends it to +infinity). We
    maximise by Newton's method with step halving: the objective is strictly concave, so this
    converges in a handful of steps. Ratings are then shifted so `anchor` sits at `anchor_elo`
    (e.g. a random player at 0), or, with no anchor, so their mean is `anchor_elo`.

    A player that wins 75% against another ends up 400 log10(3) ~ 191 Elo above it.
    """
    if prior <= 0:
        raise ValueError(f"prior must be > 0 (it keeps undefeated players finite), got {prior}")
    players: dict[Any, int] = {}
    a_idx, b_idx, score = [], [], []
    for game in results:
        if len(game) != 3:
            raise ValueError(f"each result must be (player_a, player_b, score_a), got {game!r}")
        a, b, s = game
        if a == b:
            raise ValueError(f"a player cannot play itself: {game!r}")
        if not 0.0 <= float(s) <= 1.0:
            raise ValueError(f"score_a must be in [0, 1] (1 win, 0.5 draw, 0 loss), got {s!r} in {game!r}")
        a_idx.append(players.setdefault(a, len(players)))
        b_idx.append(players.setdefault(b, len(players)))
        score.append(float(s))
    if anchor is not None and anchor not in players:
        raise ValueError(f"anchor {anchor!r} played no game; players are {list(players)}")
    if not players:
        return {}
    m = len(players)
    ia, ib, s = np.array(a_idx), np.array(b_idx), np.array(score)

    def objective(theta: np.ndarray) -> float:
        d = theta[ia] - theta[ib]
        # log sigma(x) = -log(1 + e^-x), computed stably with logaddexp
        return float(-(s * np.logaddexp(0.0, -d) + (1 - s) * np.logaddexp(0.0, d)).sum()
                     - 0.5 * prior * theta @ theta)

    theta = np.zeros(m)
    value = objective(theta)
    for _ in range(max_iter):
        d = theta[ia] - theta[ib]
        p = 1.0 / (1.0 + np.exp(-d))
        r = s - p  # d logL / d theta_a for each game; the negative for theta_b
        grad = np.bincount(ia, r, m) - np.bincount(ib, r, m) - prior * theta
        w = p * (1.0 - p)
        hess = np.zeros((m, m))  # negative Hessian: a weighted graph Laplacian plus the prior
        np.add.at(hess, (ia, ia), w)
        np.add.at(hess, (ib, ib), w)
        np.add.at(hess, (ia, ib), -w)
        np.add.at(hess, (ib, ia), -w)
        hess[np.diag_indices(m)] += prior
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-8 and objective(theta + t * step) < value - 1e-12:
            t *= 0.5
        if t <= 1e-8:  # no ascent left along the Newton direction: converged to rounding
            break
        theta = theta + t * step
        improvement, value = objective(theta) - value, objective(theta)
        if np.max(np.abs(t * step)) < 1e-10 or abs(improvement) < 1e-13:
            break
    elo = theta * ELO_SCALE
    shift = anchor_elo - (elo[players[anchor]] if anchor is not None else elo.mean())
    return {name: float(elo[i] + shift) for name, i in players.items()}


__all__ = ["pass_at_k", "pass_hat_k", "majority_vote", "mean_ci", "wilson_interval", "elo_from_results"]
