"""The arithmetic of reward-model over-optimisation (Gao, Schulman & Hilton 2022, "Scaling laws for
reward model overoptimization"): how far a policy has moved, what best-of-n is worth, and the
functional forms gold follows as the proxy is pushed.

Distance. Gao et al. measure it as d = sqrt(KL(pi || pi_init)). For best-of-n against a reward r
with no ties the KL has a closed form (Stiennon et al. 2020, appendix G.3):

    KL_bon(n) = log n - (n - 1) / n

It is an upper bound once responses repeat (Beirami et al. 2024): a small policy often samples the
same answer, and picking "the best" of n identical answers moves nothing. `bon_kl_plugin` computes
the KL of best-of-n over the empirical distribution of M samples, ties (equal scores) merged:

    pi_bon(level) = F(level)^n - (F(level) - q(level))^n,   KL = sum pi_bon log(pi_bon / q)

with q a level's share of the samples and F the share at or below it; it tends to the closed form
for distinct samples and M >> n, and never exceeds log M.

Value of best-of-n. From M samples of one prompt, the expected value (gold or proxy) of the pick
of n iid draws is estimated without bias by weighting the i-th lowest-scored sample by
C(i - 1, n - 1) / C(M, n) (Nakano et al. 2021, WebGPT, appendix; the estimator Gao et al. use).

Functional forms, fitted to the gold gain R(d) = gold(d) - gold(0):

    best-of-n:  R(d) = d (alpha - beta d)          peak at d* = alpha / (2 beta)
    RL:         R(d) = d (alpha - beta log d)      peak at d* = exp(alpha / beta - 1)

Both are linear in (alpha, beta), so least squares is exact (no intercept: R(0) = 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Form = Literal["bon", "rl"]


def bon_kl_analytic(n: int) -> float:
    """KL(pi_bon || pi) = log n - (n - 1) / n for best-of-n without ties."""
    if n < 1:
        raise ValueError(f"n: expected >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def _levels(scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct score levels, their share of the samples)."""
    values, counts = np.unique(np.asarray(scores, dtype=np.float64), return_counts=True)
    return values, counts / counts.sum()


def bon_kl_plugin(scores: Sequence[float], n: int) -> float:
    """KL of best-of-n over the empirical distribution of `scores` (one prompt's M samples' rewards;
    equal scores are one level: repeated responses)."""
    if n < 1:
        raise ValueError(f"n: expected >= 1, got {n}")
    if len(scores) == 0:
        raise ValueError("scores: expected at least one sample's score")
    _, q = _levels(scores)
    upper = np.cumsum(q)
    lower = np.concatenate([[0.0], upper[:-1]])
    p_bon = np.clip(upper, 0, 1) ** n - np.clip(lower, 0, 1) ** n
    keep = p_bon > 0
    return float(np.sum(p_bon[keep] * np.log(p_bon[keep] / q[keep])))


def bon_weights(m: int, n: int) -> np.ndarray:
    """Weights of the M samples, sorted by score ascending, whose dot product with their values is the
    unbiased estimate of E[value of the best of n iid draws]: C(i - 1, n - 1) / C(M, n), i = 1..M."""
    if not 1 <= n <= m:
        raise ValueError(f"n: expected 1 <= n <= {m} (the samples drawn), got {n}")
    i = np.arange(1, m + 1)
    log_w = np.full(m, -np.inf)
    ok = i >= n
    lg = np.vectorize(math.lgamma)
    log_w[ok] = (lg(i[ok]) - lg(n) - lg(i[ok] - n + 1)) - (math.lgamma(m + 1) - math.lgamma(n + 1)
                                                           - math.lgamma(m - n + 1))
    return np.exp(log_w)


def bon_expected(scores: Sequence[float], values: Sequence[float], n: int) -> float:
    """Unbiased estimate of E[value of the best-of-n pick by `scores`] from one prompt's M samples.
    Samples with equal scores share their level's weight (the pick among them is uniform)."""
    scores_a, values_a = np.asarray(scores, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if scores_a.shape != values_a.shape:
        raise ValueError(f"values: expected one per score ({len(scores_a)}), got {len(values_a)}")
    order = np.argsort(scores_a, kind="stable")
    s, v = scores_a[order], values_a[order]
    w = bon_weights(len(s), n)
    _, starts, counts = np.unique(s, return_index=True, return_counts=True)
    total = 0.0
    for start, count in zip(starts, counts):
        total += w[start:start + count].sum() * v[start:start + count].mean()
    return float(total)


@dataclass(frozen=True)
class GaoFit:
    """A fitted gold curve: R(d) = d (alpha - beta d) ('bon') or d (alpha - beta log d) ('rl')."""

    form: Form
    alpha: float
    beta: float
    r2: float
    d_peak: float | None       # None: the fitted curve never turns down (beta <= 0)
    gain_peak: float | None    # R(d_peak): the most the gold gains over the start
    points: int

    def predict(self, d: Sequence[float] | np.ndarray) -> np.ndarray:
        return _features(np.asarray(d, dtype=np.float64), self.form) @ np.array([self.alpha, self.beta])

    def as_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _features(d: np.ndarray, form: Form) -> np.ndarray:
    if form == "bon":
        return np.stack([d, -d * d], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dlogd = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    return np.stack([d, -dlogd], axis=1)


def fit_gao(d: Sequence[float], gain: Sequence[float], form: Form) -> GaoFit:
    """Least-squares fit of Gao et al.'s form to gold gains `gain` at distances `d` (sqrt KL)."""
    if form not in ("bon", "rl"):
        raise ValueError(f"form: expected 'bon' or 'rl', got {form!r}")
    x, y = np.asarray(d, dtype=np.float64), np.asarray(gain, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"gain: expected one value per distance ({x.size}), got {y.size}")
    if np.any(x < 0):
        raise ValueError("d: distances sqrt(KL) must be >= 0")
    if np.count_nonzero(x > 0) < 2:
        raise ValueError("d: need at least two points away from d = 0 to fit two coefficients")
    features = _features(x, form)
    (alpha, beta), *_ = np.linalg.lstsq(features, y, rcond=None)
    residual = float(np.sum((y - features @ np.array([alpha, beta])) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    d_peak = gain_peak = None
    if beta > 0:
        d_peak = alpha / (2 * beta) if form == "bon" else math.exp(alpha / beta - 1)
        if d_peak > 0:
            gain_peak = float(_features(np.array([d_peak]), form)[0] @ np.array([alpha, beta]))
        else:
            d_peak = None
    return GaoFit(form, float(alpha), float(beta), float(r2), d_peak, gain_peak, int(x.size))


__all__ = ["bon_kl_analytic", "bon_kl_plugin", "bon_weights", "bon_expected", "GaoFit", "fit_gao"]
