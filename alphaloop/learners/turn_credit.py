"""Credit per turn for multi-turn (agent) episodes: which of an episode's actions earned its reward.

An agent episode's tokens alternate the policy's actions (mask 1) and the env's answers (mask 0);
the reward comes once, at the end. The outcome estimators of `advantages.py` (GRPO, RLOO) give
every action of an episode the same advantage, so a good `ls` in a failed episode is pushed down
with the slip that failed it. Two estimators here score each action (turn) i from the value of
the state s_i it was taken in -- the transcript up to its first token -- and the next one:

    turn-level GAE over a learned critic (Schulman et al. 2016, applied per turn as in ArCHer,
    Zhou et al. 2024):  delta_i = r_i + gamma V(s_{i+1}) - V(s_i),  A_i = sum_l (gamma lam)^l delta_{i+l},
                        with V(s_T) = 0 after the last action and r_i = 0 but for the final reward;

    Monte Carlo values (VinePPO, Kazemnejad et al. 2024): V^(s_i) = the mean reward of K fresh
    roll-outs of the current policy from s_i (the env's state is replayed, so any intermediate state
    can be resumed), and A_i = r_i + V^(s_{i+1}) - V^(s_i), i.e. gamma = 1 and lam = 0 over unbiased
    value estimates instead of a critic's biased ones.

Either way every token of action i gets A_i (the tokens of one action share its credit), and the
env's tokens get none. With a single action per episode both reduce to A = r - V(s_0).
"""

from __future__ import annotations

import torch

from alphaloop.learners.advantages import gae


def turn_starts(mask: torch.Tensor) -> torch.Tensor:
    """[N, T] bool: the first token of each action (a masked-in token after a masked-out one, or at 0)."""
    on = mask > 0
    before = torch.zeros_like(on)
    before[:, 1:] = on[:, :-1]
    return on & ~before


def turn_of_token(mask: torch.Tensor) -> torch.Tensor:
    """[N, T] long: for every token, the position of the first token of the action it belongs to (for
    the env's tokens, of the action before them; 0 before the first action)."""
    starts = turn_starts(mask)
    positions = torch.arange(mask.shape[1]).expand_as(mask) * starts
    return positions.cummax(dim=1).values


def broadcast_turns(per_start: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Spread the values held at each action's first token over all of that action's tokens (0 elsewhere)."""
    return per_start.gather(1, turn_of_token(mask)) * (mask > 0).to(per_start.dtype)


def turn_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
             lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Turn-level GAE over a critic read at each action's first token.

    `rewards` [N] (the episode's outcome, credited to its last action), `values` [N, T] (the value
    head at the state predicting each completion token), `mask` [N, T] (the policy's tokens).
    Returns (advantages [N, T] spread over each action's tokens, returns [N, T] held at each
    action's first token, value_mask [N, T]: those first tokens, where the critic is trained).
    """
    starts = turn_starts(mask)
    last = starts & (starts.long().cumsum(1) == starts.long().sum(1, keepdim=True))  # the final action
    token_rewards = last.to(values.dtype) * rewards.to(values.dtype).reshape(-1, 1)
    value_mask = starts.to(values.dtype)
    # `gae` passes over masked-out positions, so on the start mask it runs one step per turn.
    advantages, returns = gae(token_rewards, values, value_mask, gamma, lam)
    return broadcast_turns(advantages, mask), returns, value_mask


def vine_advantages(rewards: list[float], state_values: list[list[float]]) -> list[list[float]]:
    """Per-action advantages from Monte Carlo state values (VinePPO): for an episode whose actions were
    taken in states with values [v_0, ..., v_{T-1}] and which ended with reward r,

        A_i = v_{i+1} - v_i  (i < T - 1),   A_{T-1} = r - v_{T-1},

    so the advantages sum to r - v_0 and an action that kept the odds where they were scores 0."""
    out = []
    for reward, values in zip(rewards, state_values):
        if not values:
            out.append([])
            continue
        nxt = list(values[1:]) + [float(reward)]
        out.append([b - a for a, b in zip(values, nxt)])
    return out


def per_turn_tensor(per_turn: list[list[float]], mask: torch.Tensor) -> torch.Tensor:
    """[N, T]: row n's value i on every token of its action i (actions found from `mask`)."""
    starts = turn_starts(mask)
    out = torch.zeros(mask.shape)
    for row, values in enumerate(per_turn):
        positions = starts[row].nonzero().flatten()
        if len(positions) != len(values):
            raise ValueError(f"row {row}: {len(values)} per-turn values for {len(positions)} actions in the mask")
        if len(values):
            out[row, positions] = torch.tensor(values, dtype=out.dtype)
    return broadcast_turns(out, mask)
