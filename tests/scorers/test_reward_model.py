"""Reward models: the scalar read at the end of the response, ensembles and their aggregation."""

import pytest
import torch

from alphaloop.envs import make_env
from alphaloop.policies.lm import LMArch, LMPolicy
from alphaloop.scorers.reward_model import RewardEnsemble, RewardModel

TINY = LMArch(hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=32, max_seq_len=96)


def test_reward_reads_the_whole_response_and_saves(tmp_path):
    policy = LMPolicy.build(TINY, make_env("assistant").alphabet, seed=0)
    rm = RewardModel.from_policy(policy, seed=1)
    assert policy.value_head is None                      # the policy itself is left alone
    scores = rm.score_texts(["add 1 and 2. "] * 3, ["3", "3 ", "sure! 3"])
    assert len({round(s, 6) for s in scores}) == 3        # every character of the response counts
    batched = rm.rewards(["add 1 and 2. ", "capital of peru? "], ["3", "lima"]).tolist()
    single = [rm.rewards(["add 1 and 2. "], ["3"]).item(), rm.rewards(["capital of peru? "], ["lima"]).item()]
    assert batched == pytest.approx(single, abs=1e-5)     # padding does not leak into the reward
    ensemble = RewardEnsemble([rm, RewardModel.from_policy(policy, seed=2)], "min")
    ensemble.save(tmp_path / "rm")
    again = RewardEnsemble.load(tmp_path / "rm")
    assert again.aggregate == "min" and len(again.members) == 2
    assert again.score_texts(["add 1 and 2. "], ["3"]) == pytest.approx(ensemble.score_texts(["add 1 and 2. "], ["3"]),
                                                                          abs=1e-6)


def test_ensemble_aggregation():
    scores = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 3.0]])
    members = [object(), object(), object()]
    assert RewardEnsemble(members, "mean").combine(scores).tolist() == pytest.approx([2.0, 1.0])
    assert RewardEnsemble(members, "min").combine(scores).tolist() == pytest.approx([1.0, 0.0])
    std = scores.std(0)
    assert RewardEnsemble(members, "mean_minus_std", lam=0.5).combine(scores).tolist() == pytest.approx(
        (torch.tensor([2.0, 1.0]) - 0.5 * std).tolist())
    with pytest.raises(ValueError, match="aggregate"):
        RewardEnsemble(members, "median")
