"""Monte Carlo state values for VinePPO: a transcript resumed part-way replays the env's state, greedy
continuations reproduce the episode they came from, identical prefixes are estimated once."""

import random

import pytest
import torch

from alphaloop.agent_memory import token_runs
from alphaloop.collect import agent as agent_collect
from alphaloop.collect.agent_values import resumed_transcript, state_values
from alphaloop.envs import make_env
from alphaloop.learners.rl_update import PolicyGradientSettings, rollout_batch
from alphaloop.learners.turn_credit import turn_starts, vine_advantages
from alphaloop.policies.arch import LMArch
from alphaloop.policies.lm import LMPolicy


@pytest.fixture(scope="module")
def env():
    return make_env("shell", seed=0, slip=0.0, typo=0.0, harm_slip=0.0, max_files=2)


@pytest.fixture(scope="module")
def policy(env):
    return LMPolicy.build(LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                 max_seq_len=384), env.alphabet, seed=0)


def test_token_runs_alternate():
    assert token_runs([1, 1, 0, 1, 0, 0]) == [(0, 2, True), (2, 3, False), (3, 4, True), (4, 6, False)]


def test_a_resumed_transcript_replays_the_state_and_tokens(env, policy):
    problem = env.sample_problem(random.Random(3), "train")
    episode = agent_collect.expert_transcript(env, problem, random.Random(0), policy)
    assert len(episode.actions) >= 3
    run = resumed_transcript(env, problem, episode, 2)
    assert run.actions == episode.actions[:2] and run.outcome.steps == 2
    start = [s for s, _, is_action in token_runs(episode.action_mask) if is_action][2]
    assert run.action_ids == episode.action_ids[:start] and run.action_mask == episode.action_mask[:start]
    for action in episode.actions[2:]:   # the rest of the expert's actions finish the task from there
        if run.add_action(env, action) is None:
            break
    assert run.episode(env).success
    with pytest.raises(ValueError, match="no state before action"):
        resumed_transcript(env, problem, episode, len(episode.actions))


def test_greedy_continuations_reproduce_their_episode(env):
    from tests.collect.test_agent_collect import trained_like

    policy = trained_like(env)
    problems = [env.sample_problem(random.Random(i), "train") for i in range(4)]
    groups = agent_collect.agent_episodes(policy, env, problems, samples=2, temperature=0.0)
    values, cost = state_values(policy, env, problems, groups, samples=2, temperature=0.0)
    for group, per_group in zip(groups, values):
        for e, (episode, state) in enumerate(zip(group, per_group)):
            assert len(state) == len(episode.actions)
            assert state[0] == group[1 - e].reward                      # v_0: the other episode's reward
            assert all(v == episode.reward for v in state[1:])           # greedy: the same ending again
    # Greedy pairs are identical, so each distinct state is rolled out once per sample.
    distinct = {(g, tuple(e.action_ids[:s])) for g, group in enumerate(groups) for e in group
                for t, (s, _, a) in enumerate(x for x in token_runs(e.action_mask) if x[2]) if t > 0}
    assert cost.states == len(distinct) and cost.rollouts == 2 * len(distinct) and cost.actions > 0


def test_vineppo_batch_gives_each_action_its_own_advantage(env, policy):
    problems = [env.sample_problem(random.Random(i), "train") for i in range(2)]
    groups = agent_collect.agent_episodes(policy, env, problems, samples=2, temperature=1.0,
                                          generator=torch.Generator().manual_seed(0))
    episodes = [e for g in groups for e in g]
    rewards = torch.tensor([[e.reward for e in g] for g in groups])
    per_turn = vine_advantages(rewards.reshape(-1).tolist(), [[0.5] * len(e.actions) for e in episodes])
    settings = PolicyGradientSettings(algorithm="vineppo", mask_truncated=False)
    rollout, _ = rollout_batch(policy, episodes, rewards, settings, turn_advantages=per_turn)
    starts = turn_starts(rollout.batch.mask)
    for row, values in enumerate(per_turn):
        assert rollout.advantages[row][starts[row]].tolist() == pytest.approx(values)
    assert (rollout.advantages * (1 - rollout.batch.mask)).abs().sum() == 0
    with pytest.raises(ValueError, match="turn_advantages"):
        rollout_batch(policy, episodes, rewards, settings)
