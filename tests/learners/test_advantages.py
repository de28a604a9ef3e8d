"""Advantage estimators against values worked out by hand on a 2 x 3 reward matrix."""

import math

import pytest
import torch

from alphaloop.learners.advantages import (
    compute_advantages,
    dr_grpo_advantages,
    gae,
    grpo_advantages,
    reinforce_advantages,
    rloo_advantages,
    update_baseline,
    zero_variance_groups,
)

# Group 0: one success out of three; group 1: graded rewards 0, 0.5, 1.
REWARDS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0]], dtype=torch.float64)


def close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), rtol=0, atol=1e-9)


def test_reinforce_and_moving_average_baseline():
    close(reinforce_advantages(REWARDS, 0.25), [[0.75, -0.25, -0.25], [-0.25, 0.25, 0.75]])
    # mean reward = 2.5 / 6; b = 0.9 * 0.5 + 0.1 * 2.5 / 6 = 0.45 + 0.041666...
    assert update_baseline(0.5, REWARDS, 0.9) == pytest.approx(0.45 + 0.25 / 6, abs=1e-12)
    assert update_baseline(0.5, REWARDS, 0.0) == pytest.approx(2.5 / 6, abs=1e-12)
    with pytest.raises(ValueError, match="momentum"):
        update_baseline(0.5, REWARDS, 1.0)


def test_rloo_leaves_one_out():
    # group 0: 1 - (0+0)/2, 0 - (1+0)/2, 0 - (1+0)/2; group 1: 0 - 1.5/2, 0.5 - 1/2, 1 - 0.5/2
    close(rloo_advantages(REWARDS), [[1.0, -0.5, -0.5], [-0.75, 0.0, 0.75]])
    with pytest.raises(ValueError, match="at least 2"):
        rloo_advantages(torch.ones(4, 1))


def test_grpo_uses_unbiased_std():
    # group 0: mean 1/3, unbiased var = (4/9 + 1/9 + 1/9) / 2 = 1/3 -> std 1/sqrt(3)
    # group 1: mean 1/2, unbiased var = (1/4 + 0 + 1/4) / 2 = 1/4 -> std 1/2
    s3 = math.sqrt(3.0)
    close(grpo_advantages(REWARDS, eps=0.0), [[2 / s3, -1 / s3, -1 / s3], [-1.0, 0.0, 1.0]])
    # the biased std (divide by n) would give sqrt(3/2) = 1.2247 for group 1's extremes, not 1
    assert grpo_advantages(REWARDS, eps=0.0)[1, 2].item() != pytest.approx(math.sqrt(1.5))
    # with the default eps the scale is std + 1e-4
    close(grpo_advantages(REWARDS)[1], [-0.5 / 0.5001, 0.0, 0.5 / 0.5001])
    # two completions {0, 1}: unbiased std = 0.7071, so A = +-0.7071 (and not +-1)
    close(grpo_advantages(torch.tensor([[0.0, 1.0]], dtype=torch.float64), eps=0.0),
          [[-1 / math.sqrt(2), 1 / math.sqrt(2)]])


def test_grpo_zero_variance_group_gets_zero_advantage():
    adv = grpo_advantages(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]))
    assert torch.equal(adv[0], torch.zeros(3))
    assert torch.isfinite(adv).all()
    with pytest.raises(ValueError, match="at least 2"):
        grpo_advantages(torch.ones(3, 1))


def test_dr_grpo_is_mean_centred_without_std():
    close(dr_grpo_advantages(REWARDS), [[2 / 3, -1 / 3, -1 / 3], [-0.5, 0.0, 0.5]])


def test_dispatcher():
    close(compute_advantages("rloo", REWARDS), rloo_advantages(REWARDS).tolist())
    close(compute_advantages("grpo", REWARDS, eps=0.0), grpo_advantages(REWARDS, eps=0.0).tolist())
    close(compute_advantages("dr_grpo", REWARDS), dr_grpo_advantages(REWARDS).tolist())
    close(compute_advantages("reinforce", REWARDS, baseline=1.0), (REWARDS - 1.0).tolist())
    # integer rewards are accepted and come back as floats
    assert compute_advantages("dr_grpo", torch.tensor([[0, 1]])).dtype == torch.get_default_dtype()
    with pytest.raises(ValueError, match="gae"):
        compute_advantages("ppo", REWARDS)
    with pytest.raises(ValueError, match="unknown advantage method 'a2c'.*rloo"):
        compute_advantages("a2c", REWARDS)
    with pytest.raises(ValueError, match=r"\[G, n\]"):
        compute_advantages("grpo", REWARDS.flatten())


def test_zero_variance_groups():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3, 0.1 + 0.2, 0.3],
                            [0.0, 0.0, 0.1]])
    assert zero_variance_groups(rewards).tolist() == [True, True, False, True, False]
    assert zero_variance_groups(rewards).dtype == torch.bool


def _gae_by_hand(rewards, values, mask, gamma, lam):
    """A_t = sum_l (gamma lam)^l delta_{t+l} over the masked steps, written as the plain double sum."""
    adv = torch.zeros_like(values)
    for i in range(values.shape[0]):
        steps = [t for t in range(values.shape[1]) if mask[i, t] > 0]
        vals = [values[i, t].item() for t in steps] + [0.0]
        deltas = [rewards[i, t].item() + gamma * vals[k + 1] - vals[k] for k, t in enumerate(steps)]
        for k, t in enumerate(steps):
            adv[i, t] = sum((gamma * lam) ** l * deltas[k + l] for l in range(len(steps) - k))
    return adv, (adv + values) * mask


def test_gae_matches_hand_computation_with_prompt_and_padding():
    # row 0: prompt at t=0, completion t=1..3, reward 1 on its last token
    # row 1: prompt at t=0, completion t=1..2, padding at t=3 (junk reward and value must be ignored)
    mask = torch.tensor([[0, 1, 1, 1], [0, 1, 1, 0]], dtype=torch.float64)
    rewards = torch.tensor([[3.0, 0.0, 0.0, 1.0], [3.0, 0.0, 0.5, 9.0]], dtype=torch.float64)
    values = torch.tensor([[5.0, 0.2, 0.4, 0.6], [7.0, 0.1, 0.3, 8.0]], dtype=torch.float64)
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 0: delta_3 = 1 - .6 = .4;  delta_2 = .9*.6 - .4 = .14;  delta_1 = .9*.4 - .2 = .16
    #        A_3 = .4;  A_2 = .14 + .72*.4 = .428;  A_1 = .16 + .72*.428 = .46816
    # row 1: delta_2 = .5 - .3 = .2;  delta_1 = .9*.3 - .1 = .17;  A_2 = .2;  A_1 = .17 + .72*.2 = .314
    close(adv, [[0.0, 0.46816, 0.428, 0.4], [0.0, 0.314, 0.2, 0.0]])
    close(ret, [[0.0, 0.66816, 0.828, 1.0], [0.0, 0.414, 0.5, 0.0]])
    # lam = 1: returns are the discounted Monte-Carlo returns gamma^(steps to go) * r
    _, mc = gae(rewards, values, mask, gamma=0.9, lam=1.0)
    close(mc, [[0.0, 0.81, 0.9, 1.0], [0.0, 0.45, 0.5, 0.0]])


def test_gae_matches_double_sum_on_random_batch():
    gen = torch.Generator().manual_seed(0)
    n, t = 5, 9
    rewards = torch.randn(n, t, generator=gen, dtype=torch.float64)
    values = torch.randn(n, t, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(n, t, dtype=torch.float64)
    for i, (start, stop) in enumerate([(0, 9), (2, 5), (3, 9), (1, 2), (4, 4)]):  # row 4: no tokens
        mask[i, start:stop] = 1.0
    mask[2, 5:7] = 0.0  # an interior gap (e.g. an env's reply in a multi-turn episode) is skipped over
    adv, ret = gae(rewards, values, mask, gamma=0.97, lam=0.9)
    ref_adv, ref_ret = _gae_by_hand(rewards, values.detach(), mask, 0.97, 0.9)
    torch.testing.assert_close(adv, ref_adv)
    torch.testing.assert_close(ret, ref_ret)
    assert not adv.requires_grad and not ret.requires_grad


def test_gae_rejects_bad_input():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="same shape"):
        gae(x, torch.zeros(2, 4), x, 1.0, 0.95)
    with pytest.raises(ValueError, match="lam"):
        gae(x, x, x, 1.0, 1.5)
