"""Per-turn credit for agent episodes: turn boundaries from the action mask, turn-level GAE against a
brute-force recursion over turns, VinePPO advantages, and the rollout batch's per-turn advantages."""

import pytest
import torch

from alphaloop.learners.turn_credit import (
    broadcast_turns,
    per_turn_tensor,
    turn_gae,
    turn_of_token,
    turn_starts,
    vine_advantages,
)

# Three actions (tokens 0-1, 4-5, 8) separated by env tokens, then padding.
MASK = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0]], dtype=torch.float)


def test_turn_starts_and_token_owners():
    assert turn_starts(MASK)[0].nonzero().flatten().tolist() == [0, 4, 8]
    assert turn_of_token(MASK)[0].tolist() == [0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8]
    spread = broadcast_turns(torch.arange(11.0)[None], MASK)
    assert spread[0].tolist() == [0, 0, 0, 0, 4, 4, 0, 0, 8, 0, 0]


def test_a_transcript_that_starts_with_env_tokens_still_finds_its_actions():
    mask = torch.tensor([[0, 0, 1, 0, 1, 1]], dtype=torch.float)
    assert turn_starts(mask)[0].nonzero().flatten().tolist() == [2, 4]


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (1.0, 0.0), (1.0, 1.0)])
def test_turn_gae_matches_the_recursion_over_turns(gamma, lam):
    values = torch.randn(1, 11)
    reward = torch.tensor([0.7])
    advantages, returns, value_mask = turn_gae(reward, values, MASK, gamma, lam)
    v = [float(values[0, p]) for p in (0, 4, 8)]
    rewards = [0.0, 0.0, 0.7]
    expected, running = [0.0] * 3, 0.0
    for i in reversed(range(3)):
        following = v[i + 1] if i + 1 < 3 else 0.0
        running = rewards[i] + gamma * following - v[i] + gamma * lam * running
        expected[i] = running
    for i, position in enumerate((0, 4, 8)):
        assert advantages[0, position] == pytest.approx(expected[i], abs=1e-5)
        assert returns[0, position] == pytest.approx(expected[i] + v[i], abs=1e-5)
    assert advantages[0, 1] == advantages[0, 0] and advantages[0, 5] == advantages[0, 4]
    assert advantages[0, 2] == 0 and advantages[0, 9] == 0          # env tokens and padding: no credit
    assert value_mask[0].nonzero().flatten().tolist() == [0, 4, 8]


def test_one_action_reduces_to_reward_minus_value():
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.float)
    values = torch.tensor([[0.25, 9.0, 9.0, 9.0]])
    advantages, _, _ = turn_gae(torch.tensor([1.0]), values, mask, 1.0, 0.95)
    assert advantages[0].tolist() == pytest.approx([0.75, 0.75, 0.75, 0.0])


def test_vine_advantages_telescope_to_reward_minus_first_value():
    [adv] = vine_advantages([1.0], [[0.5, 0.25, 0.75]])
    assert adv == pytest.approx([-0.25, 0.5, 0.25])
    assert sum(adv) == pytest.approx(1.0 - 0.5)
    assert vine_advantages([0.0], [[]]) == [[]]


def test_per_turn_tensor_spreads_each_action_value_and_checks_counts():
    spread = per_turn_tensor([[1.0, 2.0, 3.0]], MASK)
    assert spread[0].tolist() == [1, 1, 0, 0, 2, 2, 0, 0, 3, 0, 0]
    with pytest.raises(ValueError, match="3 actions"):
        per_turn_tensor([[1.0, 2.0]], MASK)
