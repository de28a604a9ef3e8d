"""Evaluation: metrics (pure functions, no torch) here; `alphaloop.evals.evaluate` runs policies."""

from alphaloop.evals.metrics import (
    elo_from_results,
    majority_vote,
    mean_ci,
    pass_at_k,
    pass_hat_k,
    wilson_interval,
)
from alphaloop.evals.overoptimisation import bon_kl_analytic, fit_gao

__all__ = ["pass_at_k", "pass_hat_k", "majority_vote", "mean_ci", "wilson_interval", "elo_from_results",
           "bon_kl_analytic", "fit_gao"]
