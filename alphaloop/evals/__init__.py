"""Evaluation: metrics (pure functions, no torch) here; `alphaloop.evals.evaluate` runs policies."""

from alphaloop.evals.metrics import (
    elo_from_results,
    gao_fit,
    kl_best_of_n,
    majority_vote,
    mean_ci,
    pass_at_k,
    pass_hat_k,
    wilson_interval,
)

__all__ = ["pass_at_k", "pass_hat_k", "majority_vote", "mean_ci", "wilson_interval", "elo_from_results",
           "kl_best_of_n", "gao_fit"]
