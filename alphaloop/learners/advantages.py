"""Advantage estimators for the `rl` stage: how much better than expected each completion did.

A policy-gradient step pushes up log pi(y) in proportion to an advantage A(y). Subtracting a
baseline b from the reward leaves the gradient unbiased (E[grad log pi * b] = 0 when b does not
depend on y) and cuts its variance. The estimators below differ only in the baseline and the
scale:

    reinforce   A = r - b,  b a moving average of past rewards          (Williams 1992)
    rloo        A_i = r_i - mean_{j != i} r_j                          (Kool et al. 2019)
    grpo        A_i = (r_i - mean_j r_j) / (std_j r_j + eps)            (Shao et al. 2024)
    dr_grpo     A_i = r_i - mean_j r_j                                  (Liu et al. 2025)
    ppo         token-level GAE with a learned critic                  (Schulman et al. 2016)

Group estimators take rewards as [G, n]: G prompts (groups) x n completions each, which is the
row order of the token tensors (row i of an [N, T] batch belongs to group i // n).
"""

from __future__ import annotations

import torch

METHODS = ("reinforce", "rloo", "grpo", "dr_grpo", "ppo")


def _float(rewards: torch.Tensor) -> torch.Tensor:
    return rewards if rewards.is_floating_point() else rewards.to(torch.get_default_dtype())


def _groups(rewards: torch.Tensor, name: str, min_size: int = 1) -> torch.Tensor:
    if rewards.dim() != 2:
        raise ValueError(f"{name}: rewards must be a [G, n] tensor (groups x completions), "
                         f"got shape {tuple(rewards.shape)}")
    if rewards.shape[1] < min_size:
        raise ValueError(f"{name}: needs at least {min_size} completions per group, "
                         f"got rewards of shape {tuple(rewards.shape)}")
    return _float(rewards)


def reinforce_advantages(rewards: torch.Tensor, baseline: float) -> torch.Tensor:
    """REINFORCE with a baseline (Williams 1992): A = r - b.

    `b` must not depend on the rewards being scored or the gradient is biased: compute the
    advantages with the baseline from *before* this batch, then call `update_baseline`.
    """
    return _float(rewards) - baseline


def update_baseline(baseline: float, rewards: torch.Tensor, momentum: float) -> float:
    """Exponential moving average of the mean reward: b <- momentum * b + (1 - momentum) * mean(r)."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if rewards.numel() == 0:
        raise ValueError("rewards is empty: cannot update the baseline from no rewards")
    return momentum * float(baseline) + (1.0 - momentum) * float(_float(rewards).mean())


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics").

        A_i = r_i - 1/(n-1) sum_{j != i} r_j  =  n/(n-1) (r_i - mean_j r_j)

    Each completion's baseline is the mean of the *other* n - 1 completions of its prompt, so it
    is independent of r_i and the estimate stays unbiased. Needs n >= 2.
    """
    rewards = _groups(rewards, "rloo_advantages", min_size=2)
    n = rewards.shape[1]
    others = (rewards.sum(dim=1, keepdim=True) - rewards) / (n - 1)
    return rewards - others


def grpo_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Group-relative advantages (Shao et al. 2024, DeepSeekMath, sec. 4.1.2 outcome supervision).

        A_i = (r_i - mean(r)) / (std(r) + eps)

    std is the *unbiased* sample standard deviation (divides by n - 1), as `torch.std` and TRL's
    GRPOTrainer compute it, so our advantages match TRL's for the same rewards.
    With n = 2 and rewards {0, 1} that gives A = +-0.7071 (the biased std would give +-1). A group
    whose rewards are all equal gets A = 0 (0 / eps). Needs n >= 2.
    """
    rewards = _groups(rewards, "grpo_advantages", min_size=2)
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True, unbiased=True)
    return (rewards - mean) / (std + eps)


def dr_grpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training"): A_i = r_i - mean(r).

    Dividing by the group std up-weights prompts that are nearly always solved or nearly always
    failed (small std), a question-difficulty bias; Dr. GRPO drops it.
    """
    rewards = _groups(rewards, "dr_grpo_advantages")
    return rewards - rewards.mean(dim=1, keepdim=True)


def compute_advantages(method: str, rewards: torch.Tensor, *, baseline: float = 0.0,
                       eps: float = 1e-4) -> torch.Tensor:
    """Dispatch to the estimator named by `method`; the result has the shape of `rewards`.

    `rewards` is [G, n] for every method (reinforce accepts any shape). `baseline` is used by
    reinforce only, `eps` by grpo only. PPO's advantages are per token and need a critic: call
    `gae` instead.
    """
    if method == "reinforce":
        return reinforce_advantages(rewards, baseline)
    if method == "rloo":
        return rloo_advantages(rewards)
    if method == "grpo":
        return grpo_advantages(rewards, eps=eps)
    if method == "dr_grpo":
        return dr_grpo_advantages(rewards)
    if method == "ppo":
        raise ValueError("method 'ppo' uses per-token advantages from a critic: call gae(rewards, values, "
                         "mask, gamma, lam) instead of compute_advantages")
    raise ValueError(f"unknown advantage method {method!r}; expected one of {', '.join(METHODS)}")


@torch.no_grad()
def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016), per token.

        delta_t = r_t + gamma V_{t+1} - V_t
        A_t     = sum_{l >= 0} (gamma lam)^l delta_{t+l}   =  delta_t + gamma lam A_{t+1}
        R_t     = A_t + V_t                                  (the critic's regression target)

    Only positions with mask 1 are steps of the episode: positions with mask 0 (prompt, padding)
    are skipped, so "t+1" is the next *masked* position, V after the last masked token is 0 (the
    episode has ended) and rewards on masked-out positions are ignored. Put the outcome reward on
    the last completion token. Skipped positions get A = R = 0. lam = 1 gives Monte-Carlo returns
    minus V; lam = 0 the one-step TD error.

    The outputs are targets, so no gradient flows through them (values may require grad).
    """
    if not (rewards.shape == values.shape == mask.shape) or rewards.dim() != 2:
        raise ValueError(f"gae: rewards, values and mask must all be [N, T] of the same shape, got "
                         f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(mask.shape)}")
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise ValueError(f"gae: gamma and lam must be in [0, 1], got gamma={gamma}, lam={lam}")
    mask = mask.to(values.dtype)
    rewards = rewards.to(values.dtype) * mask
    values = values.detach() * mask
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_adv = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = adv * m
        # A masked-out position is transparent: carry the next step's value and advantage past it.
        next_adv = m * adv + (1 - m) * next_adv
        next_value = m * values[:, t] + (1 - m) * next_value
    returns = (advantages + values) * mask
    return advantages, returns


def zero_variance_groups(rewards: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Groups whose completions all got the same reward (max - min <= tol): a [G] bool tensor.

    Such a group has zero advantage under every group baseline, so it adds no gradient but still
    counts in the batch. DAPO's dynamic sampling (Yu et al. 2025) drops these groups and samples
    more prompts until the batch is full of groups that carry signal.
    """
    rewards = _groups(rewards, "zero_variance_groups")
    return (rewards.amax(dim=1) - rewards.amin(dim=1)) <= tol
