"""Policy-gradient losses for the `rl` stage: clipped surrogate, KL to a reference, value loss.

All functions take padded per-token tensors [N, T] and a 0/1 float `mask` of completion tokens;
the log-probs are those of the sampled tokens. The full objective the stage minimises is

    L(theta) = agg_t[ -min(rho_t A_t, clip(rho_t, 1 - eps_low, 1 + eps_high) A_t)
                      + beta * k3(pi_theta, pi_ref)_t ],       rho_t = pi_theta(y_t) / pi_old(y_t)

PPO's clipped surrogate (Schulman et al. 2017) with DAPO's decoupled clip range (Yu et al. 2025),
GRPO's per-token KL penalty (Shao et al. 2024) and a choice of how tokens are averaged (`aggregate`).
"""

from __future__ import annotations

import torch

AGGREGATIONS = ("token-mean", "sequence-mean", "constant")


def _check_tokens(mask: torch.Tensor, **tensors: torch.Tensor) -> None:
    if mask.dim() != 2:
        raise ValueError(f"mask must be an [N, T] tensor, got shape {tuple(mask.shape)}")
    for name, tensor in tensors.items():
        if tensor.shape != mask.shape:
            raise ValueError(f"{name} must have the shape of mask {tuple(mask.shape)}, "
                             f"got {tuple(tensor.shape)}")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp_min(1.0))


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi || ref) (Schulman 2020, "Approximating KL divergence").

        x = log ref(y) - log pi(y),   k3 = e^x - x - 1 = expm1(x) - x

    Unbiased under y ~ pi (E_pi[e^x] = 1, so E[k3] = E[-x] = KL(pi || ref)), and unlike the naive
    estimate -x it is never negative (e^x >= 1 + x), which gives it far lower variance. It is 0
    exactly when the two log-probs agree. expm1 keeps it accurate when x is tiny.
    """
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(f"ref_logprobs must have the shape of logprobs {tuple(logprobs.shape)}, "
                         f"got {tuple(ref_logprobs.shape)}")
    x = ref_logprobs - logprobs
    return torch.expm1(x) - x


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str,
              max_tokens: int | None = None) -> torch.Tensor:
    """Reduce a per-token loss [N, T] to a scalar over the masked tokens.

    token-mean     sum_{i,t} m l / sum_{i,t} m                 (DAPO, Yu et al. 2025: every token
                   weighs the same, so long wrong answers are not under-penalised)
    sequence-mean  1/N sum_i (sum_t m l / sum_t m)             (GRPO paper, Shao et al. 2024: each
                   completion weighs the same, so its tokens weigh 1/|o_i| -- a length bias)
    constant       sum_{i,t} m l / (N * max_tokens)            (Dr. GRPO, Liu et al. 2025: a fixed
                   normaliser, no length bias and no dependence on the batch's lengths)

    A row with no masked tokens (e.g. a truncated completion given no gradient) adds 0 to every
    mode and still counts in N for sequence-mean and constant.
    """
    _check_tokens(mask, per_token=per_token)
    mask = mask.to(per_token.dtype)
    masked = per_token * mask
    if mode == "token-mean":
        return masked.sum() / mask.sum().clamp_min(1.0)
    if mode == "sequence-mean":
        return (masked.sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)).mean()
    if mode == "constant":
        if max_tokens is None or max_tokens < 1:
            raise ValueError(f"aggregation 'constant' needs max_tokens >= 1 (the generation budget), "
                             f"got {max_tokens}")
        return masked.sum() / (per_token.shape[0] * max_tokens)
    raise ValueError(f"unknown aggregation {mode!r}; expected one of {', '.join(AGGREGATIONS)}")


def _clipped_surrogate(logprobs: torch.Tensor, old_logprobs: torch.Tensor | None, advantages: torch.Tensor,
                       mask: torch.Tensor, clip_low: float, clip_high: float,
                       ) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token PPO-clip loss [N, T] and its statistics (see `clipped_policy_loss`)."""
    old_logprobs = logprobs.detach() if old_logprobs is None else old_logprobs.detach()
    _check_tokens(mask, logprobs=logprobs, old_logprobs=old_logprobs)
    if advantages.dim() == 1 and advantages.shape[0] == mask.shape[0]:
        advantages = advantages[:, None]
    elif advantages.shape != mask.shape:
        raise ValueError(f"advantages must be per sequence [{mask.shape[0]}] or per token "
                         f"{list(mask.shape)}, got {list(advantages.shape)}")
    if not 0.0 <= clip_low <= 1.0 or clip_high < 0.0:
        raise ValueError(f"need 0 <= clip_low <= 1 and clip_high >= 0, got clip_low={clip_low}, "
                         f"clip_high={clip_high}")
    advantages = advantages.detach().to(logprobs.dtype)
    mask = mask.to(logprobs.dtype)

    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantages
    per_token = -torch.minimum(unclipped, clipped)

    with torch.no_grad():
        # Clipping is active (and the gradient zero) where the clipped term is the strictly smaller one.
        high = (ratio > 1.0 + clip_high) & (advantages > 0)
        low = (ratio < 1.0 - clip_low) & (advantages < 0)
        stats = {
            "clip_fraction": _masked_mean((high | low).to(mask.dtype), mask),
            "clip_high_fraction": _masked_mean(high.to(mask.dtype), mask),
            "clip_low_fraction": _masked_mean(low.to(mask.dtype), mask),
            # Tokens were sampled from pi_old, so k3 with the roles swapped estimates KL(pi_old || pi).
            "approx_kl": _masked_mean(kl_k3(old_logprobs, logprobs.detach()), mask),
            "ratio_mean": _masked_mean(ratio, mask),
        }
    return per_token, stats


def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor | None, advantages: torch.Tensor,
                        mask: torch.Tensor, clip_low: float = 0.2, clip_high: float = 0.2,
                        aggregation: str = "token-mean", max_tokens: int | None = None,
                        ) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip surrogate (Schulman et al. 2017) with DAPO's clip-higher (Yu et al. 2025).

        rho = exp(log pi(y_t) - log pi_old(y_t))
        l_t = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)

    The clip stops the update once the ratio has moved eps past 1 in the direction the advantage
    favours: tokens with A > 0 and rho > 1 + eps_high, or A < 0 and rho < 1 - eps_low, get zero
    gradient. Raising eps_high above eps_low (DAPO: 0.28 vs 0.2) lets unlikely good tokens grow
    further, which keeps entropy from collapsing.

    `advantages` is per sequence [N] (broadcast over its tokens) or per token [N, T] (GAE).
    `old_logprobs=None` means on-policy (pi_old = pi, detached): then rho = 1, nothing is clipped
    and the gradient is exactly the REINFORCE gradient -A grad log pi per token.

    Returns the aggregated loss and stats: clip_fraction (masked tokens where clipping is active,
    split into clip_high_fraction / clip_low_fraction), approx_kl (k3 estimate of
    KL(pi_old || pi)) and ratio_mean.
    """
    per_token, stats = _clipped_surrogate(logprobs, old_logprobs, advantages, mask, clip_low, clip_high)
    return aggregate(per_token, mask, aggregation, max_tokens), stats


def policy_gradient_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor | None, advantages: torch.Tensor,
                         mask: torch.Tensor, ref_logprobs: torch.Tensor | None = None, beta: float = 0.0,
                         clip_low: float = 0.2, clip_high: float = 0.2, aggregation: str = "token-mean",
                         max_tokens: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The `rl` stage's objective: L = agg(l_clip_t + beta * k3(pi, pi_ref)_t).

    The KL penalty sits inside the per-token average as in GRPO (Shao et al. 2024, eq. 3) rather
    than in the reward as in InstructGPT; it keeps the policy near the frozen reference.
    beta = 0 needs no reference model, and ref_logprobs may then be None. Stats are those of
    `clipped_policy_loss` plus `kl` (masked mean k3 to the reference) when a reference is given.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta > 0 and ref_logprobs is None:
        raise ValueError(f"beta={beta} > 0 needs ref_logprobs (the reference policy's token log-probs)")
    per_token, stats = _clipped_surrogate(logprobs, old_logprobs, advantages, mask, clip_low, clip_high)
    if ref_logprobs is not None:
        _check_tokens(mask, ref_logprobs=ref_logprobs)
        kl = kl_k3(logprobs, ref_logprobs.detach())
        stats["kl"] = _masked_mean(kl.detach(), mask.to(kl.dtype))
        if beta > 0:
            per_token = per_token + beta * kl
    return aggregate(per_token, mask, aggregation, max_tokens), stats


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: float = 0.2, aggregation: str = "token-mean",
                       max_tokens: int | None = None) -> torch.Tensor:
    """PPO value loss with clipping (Schulman et al. 2017; as in OpenAI baselines' ppo2).

        l_t = 0.5 * max((V_t - R_t)^2, (clip(V_t, V_old - c, V_old + c) - R_t)^2)

    The critic may not move more than c from its rollout-time value in one update unless that
    move also lowers the loss of the unclipped prediction: the pessimistic max mirrors the
    policy's min.
    """
    _check_tokens(mask, values=values, old_values=old_values, returns=returns)
    if clip < 0:
        raise ValueError(f"clip must be >= 0, got {clip}")
    old_values, returns = old_values.detach(), returns.detach()
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    per_token = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return aggregate(per_token, mask, aggregation, max_tokens)


def entropy_from_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked token-mean entropy H = -sum_v p_v log p_v of logits [N, T, V], for logging.

    Computed from log_softmax (no overflow for large logits); logits of -inf (e.g. top-k masked)
    contribute 0 rather than 0 * -inf = nan.
    """
    if logits.dim() != 3 or logits.shape[:2] != mask.shape:
        raise ValueError(f"logits must be [N, T, V] matching mask {tuple(mask.shape)}, "
                         f"got {tuple(logits.shape)}")
    # Half-precision logits are upcast: the sum over a large vocabulary needs float32 at least.
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    logp = logp.clamp_min(torch.finfo(logp.dtype).min)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    mask = mask.to(entropy.dtype)
    return (entropy * mask).sum() / mask.sum().clamp_min(1.0)
