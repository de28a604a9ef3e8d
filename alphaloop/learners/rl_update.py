"""One RL update from a batch of scored episodes: the learner half of the `rl` stage.

    episodes, rewards  --rollout_batch-->  pi_old log-probs (the sampler's), reference log-probs,
                                           advantages (reinforce | rloo | grpo | dr_grpo, or GAE
                                           over a critic for ppo)
                       --update-->         `epochs` passes of `minibatches` AdamW steps on the
                                           clipped surrogate (+ beta * k3 KL, + value loss for ppo)

The losses are in `policy_gradient.py` and the advantages in `advantages.py`; this module only
lays the batch out and runs the optimisation passes. `PolicyGradientSettings` are the knobs of both
(the `rl` stage's config extends them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from alphaloop.agent_memory import rows_of, uses_memory
from alphaloop.batch import CompletionBatch, episode_batch
from alphaloop.episode import Episode
from alphaloop.learners.advantages import compute_advantages, gae, update_baseline
from alphaloop.learners.policy_gradient import clipped_value_loss, entropy_from_logits, policy_gradient_loss
from alphaloop.learners.turn_credit import per_turn_tensor, turn_gae


class PolicyGradientSettings(BaseModel):
    """The algorithm and its loss: what `rollout_batch` and `update` read."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["reinforce", "rloo", "grpo", "dr_grpo", "ppo", "vineppo"] = Field(
        "grpo", description="advantage estimator: outcome per episode (reinforce, rloo, grpo, dr_grpo), a learned "
        "critic with GAE (ppo; per token or per turn, see credit), or Monte Carlo state values per turn (vineppo)")
    grad_clip: float = Field(1.0, gt=0)
    epochs: int = Field(1, ge=1, description="optimisation passes over each rollout batch (PPO epochs)")
    minibatches: int = Field(1, ge=1, description="minibatches per epoch")
    clip_low: float = Field(0.2, ge=0, description="epsilon_low of the clipped ratio")
    clip_high: float = Field(0.2, ge=0, description="epsilon_high; > clip_low is DAPO's clip-higher")
    aggregation: Literal["token-mean", "sequence-mean", "constant"] = "token-mean"
    beta: float = Field(0.0, ge=0, description="KL(pi || reference) coefficient (k3); 0 loads no reference")
    mask_truncated: bool = Field(True, description="completions cut at max_new_tokens get no gradient")
    baseline_momentum: float = Field(0.9, ge=0, lt=1, description="REINFORCE moving-average baseline")
    gamma: float = Field(1.0, ge=0, le=1, description="PPO/GAE discount")
    lam: float = Field(0.95, ge=0, le=1, description="PPO/GAE lambda")
    value_coef: float = Field(0.5, ge=0)
    value_clip: float = Field(0.2, ge=0)
    credit: Literal["token", "turn"] = Field("token", description="ppo: GAE per token, or per turn of a multi-turn "
                                             "episode (the critic read at each action's first token)")
    vine_samples: int = Field(4, ge=1, le=256, description="vineppo: roll-outs per intermediate state (K)")


@dataclass
class RolloutBatch:
    """A step's completions laid out for the learner: per-token tensors are [N, Tc] over completion
    tokens (`CompletionBatch`), `advantages` [N] per sequence or [N, Tc] per token (GAE)."""

    batch: CompletionBatch
    mask: torch.Tensor                    # completion tokens that get a gradient
    old_logprobs: torch.Tensor            # pi_old: the sampler's log-probs, no extra forward
    advantages: torch.Tensor
    ref_logprobs: torch.Tensor | None = None
    old_values: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    value_mask: torch.Tensor | None = None   # where the critic is trained (default: `mask`)


def completion_tensor(rows: list[list[float]], shape: tuple[int, int]) -> torch.Tensor:
    """Per-completion-token values (e.g. the sampler's log-probs) as a right-padded [N, Tc] tensor."""
    out = torch.zeros(shape)
    for row, values in enumerate(rows):
        if values:
            out[row, : len(values)] = torch.tensor(values)
    return out


def minibatch_of(t: torch.Tensor, rows: torch.Tensor, width: int) -> torch.Tensor:
    """Rows `rows` of a per-sequence [N] or per-token [N, Tc] tensor, per-token ones cut to `width`
    columns (`CompletionBatch.rows` drops the padding columns no row of a minibatch needs)."""
    return t[rows, :width] if t.dim() == 2 else t[rows]


def rollout_batch(policy, episodes: list[Episode], rewards: torch.Tensor, settings: PolicyGradientSettings,
                  reference=None, baseline: float = 0.0, turn_advantages: list[list[float]] | None = None,
                  ) -> tuple[RolloutBatch, float]:
    """Lay out `episodes` (grouped G per prompt, `rewards` [P, G]) for `update`; returns the batch
    and the REINFORCE baseline after this step (unchanged for the other algorithms). vineppo reads
    its per-action advantages from `turn_advantages` (one list per episode, `turn_credit.py`).

    Agent episodes played with memory are laid out one row per action (`agent_memory.turn_rows`: the
    context the action was taken in, and the action); each row gets its episode's advantage, or its
    action's own (vineppo, and ppo's GAE over turns read at each row's first token)."""
    rows, owner = rows_of(episodes)
    per_row = uses_memory(episodes)
    batch = episode_batch(rows, policy.pad_id)   # completion tokens only, each prompt stored once
    mask = batch.mask
    old_logprobs = completion_tensor([e.logprobs for e in rows], tuple(mask.shape))
    if settings.mask_truncated:
        mask = mask * torch.tensor([0.0 if e.truncated else 1.0 for e in rows])[:, None]
    ref_logprobs = old_values = returns = value_mask = None
    if reference is not None:
        with torch.no_grad():
            ref_logprobs = reference.completion_logprobs(batch)[0]
    if settings.algorithm == "ppo":
        with torch.no_grad():
            old_values = policy.completion_logprobs(batch, return_values=True)[2]
        if per_row:
            if settings.credit != "turn":
                raise ValueError("ppo over agent episodes played with memory credits whole actions: set credit = "
                                 "'turn' (per-token GAE would run across contexts that differ from action to action)")
            advantages, returns, value_mask = row_turn_gae(rewards.reshape(-1), old_values, mask, owner,
                                                           settings.gamma, settings.lam)
        elif settings.credit == "turn":
            advantages, returns, value_mask = turn_gae(rewards.reshape(-1), old_values, mask, settings.gamma,
                                                       settings.lam)
        else:
            last = (mask.cumsum(1) == mask.sum(1, keepdim=True)) & (mask > 0)  # each row's final token
            token_rewards = last.float() * rewards.reshape(-1, 1)                # reward on the last token only
            advantages, returns = gae(token_rewards, old_values, mask, settings.gamma, settings.lam)
        valid = advantages[mask > 0]
        # Whitened over the batch's tokens; with fewer than two (every row truncated and masked, say) there
        # is no spread to whiten by, and the mean of nothing would put NaN into every weight.
        advantages = ((advantages - valid.mean()) / (valid.std() + 1e-8) * mask if valid.numel() > 1
                      else torch.zeros_like(advantages))
    elif settings.algorithm == "vineppo":
        if turn_advantages is None or len(turn_advantages) != len(episodes):
            raise ValueError("algorithm 'vineppo' needs turn_advantages: one list of per-action advantages per "
                             "episode (collect.agent_values.state_values, then turn_credit.vine_advantages)")
        if per_row:
            flat = [a for per_episode in turn_advantages for a in per_episode]
            if len(flat) != len(rows):
                raise ValueError(f"turn_advantages: {len(flat)} per-action advantages for {len(rows)} actions")
            advantages = torch.tensor(flat, dtype=mask.dtype)[:, None] * mask
        else:
            advantages = per_turn_tensor(turn_advantages, batch.mask) * mask
    else:
        advantages = compute_advantages(settings.algorithm, rewards, baseline=baseline).reshape(-1)
        if settings.algorithm == "reinforce":
            baseline = update_baseline(baseline, rewards.reshape(-1), settings.baseline_momentum)
        if per_row:
            advantages = advantages[torch.tensor(owner)]
    return RolloutBatch(batch, mask, old_logprobs, advantages, ref_logprobs, old_values, returns,
                        value_mask), baseline


def row_turn_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, owner: list[int], gamma: float,
                 lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Turn-level GAE (`turn_credit.turn_gae`) when each action is its own row: V(s_i) is the critic at
    row i's first completion token (the state the action was taken in), `owner[i]` the row's episode,
    `rewards` [E] each episode's outcome (credited to its last action). Returns (advantages [R, Tc] over
    each row's tokens, returns [R, Tc] and value_mask [R, Tc] at each row's first token)."""
    owners = torch.tensor(owner)
    turn = torch.zeros(len(owner), dtype=torch.long)
    for row in range(1, len(owner)):
        turn[row] = turn[row - 1] + 1 if owner[row] == owner[row - 1] else 0
    grid = (len(rewards), int(turn.max()) + 1)
    grid_values = torch.zeros(grid, dtype=values.dtype)
    grid_values[owners, turn] = values[:, 0]
    grid_mask = torch.zeros(grid, dtype=values.dtype)
    grid_mask[owners, turn] = 1.0
    last = grid_mask.cumsum(1) == grid_mask.sum(1, keepdim=True)
    grid_rewards = (last & (grid_mask > 0)).to(values.dtype) * rewards.to(values.dtype)[:, None]
    advantages, returns = gae(grid_rewards, grid_values, grid_mask, gamma, lam)
    first = torch.zeros_like(mask)
    first[:, 0] = 1.0
    return (advantages[owners, turn][:, None] * (mask > 0).to(mask.dtype),
            returns[owners, turn][:, None] * first, first)


def update(policy, optimizer: torch.optim.Optimizer, params: list[torch.Tensor], rollout: RolloutBatch,
           settings: PolicyGradientSettings, max_tokens: int, generator: torch.Generator) -> dict[str, float]:
    """`epochs` passes over `rollout` in `minibatches` random minibatches (order drawn from
    `generator`), one clipped AdamW step each; returns the mean of each statistic over the steps."""
    ppo = settings.algorithm == "ppo"
    policy.model.train()
    stats_sum: dict[str, float] = {}
    updates = 0
    for _ in range(settings.epochs):
        order = torch.randperm(len(rollout.batch), generator=generator)
        for rows in order.chunk(settings.minibatches):
            logprobs, logits, values = policy.completion_logprobs(rollout.batch.rows(rows), return_values=ppo)
            take = partial(minibatch_of, rows=rows, width=logprobs.shape[1])
            mask = take(rollout.mask)
            loss, stats = policy_gradient_loss(
                logprobs, take(rollout.old_logprobs), take(rollout.advantages), mask,
                ref_logprobs=None if rollout.ref_logprobs is None else take(rollout.ref_logprobs),
                beta=settings.beta, clip_low=settings.clip_low, clip_high=settings.clip_high,
                aggregation=settings.aggregation, max_tokens=max_tokens)
            if ppo:
                value_mask = mask if rollout.value_mask is None else take(rollout.value_mask)
                value_loss = clipped_value_loss(values, take(rollout.old_values), take(rollout.returns), value_mask,
                                                clip=settings.value_clip)
                loss = loss + settings.value_coef * value_loss
                stats["value_loss"] = float(value_loss.detach())
            with torch.no_grad():
                stats["entropy"] = float(entropy_from_logits(logits.detach(), mask))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, settings.grad_clip))
            optimizer.step()
            stats["loss"] = float(loss.detach())
            for key, value in stats.items():
                stats_sum[key] = stats_sum.get(key, 0.0) + value
            updates += 1
    return {k: round(v / updates, 6) for k, v in stats_sum.items()}
