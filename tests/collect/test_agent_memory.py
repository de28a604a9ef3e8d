"""Agents with bounded memory: the policy reads the task and its last N turns; training reads one row per
action in the context it was taken in; the sampler's log-probs match a learner's forward over those rows;
RL advantages, the critic and the value scorer line up with the rows."""

import random

import pytest
import torch

from alphaloop.agent_memory import action_spans, learned_mask, rows_of, turn_rows, view_start
from alphaloop.batch import episode_batch, pack_completions, pack_episodes
from alphaloop.collect import agent as agent_collect
from alphaloop.collect import demonstrations, policy_episodes
from alphaloop.envs import make_env
from alphaloop.envs.agent import Mistake
from alphaloop.learners.imitate import completion_imitation_loss, imitation_loss
from alphaloop.learners.rl_update import PolicyGradientSettings, rollout_batch, row_turn_gae
from alphaloop.learners.turn_credit import turn_gae
from alphaloop.policies.arch import LMArch
from alphaloop.policies.lm import LMPolicy
from alphaloop.scorers.value import ValueScorer


@pytest.fixture(scope="module")
def env():
    return make_env("shell", seed=0, memory=2, slip=0.0, typo=0.0, miscopy=0.0, harm_slip=0.0)


@pytest.fixture(scope="module")
def policy(env):
    return LMPolicy.build(LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                 max_seq_len=256), env.alphabet, seed=0)


def test_spans_and_view_start():
    assert action_spans([1, 1, 0, 0, 1, 0, 1, 1]) == [(0, 2), (4, 5), (6, 8)]
    assert action_spans([]) == []
    starts = [0, 4, 6, 9]
    assert view_start(starts, 0) == 0                         # no memory: the whole transcript
    assert view_start(starts, 2) == 6 and view_start(starts, 3) == 4
    assert view_start(starts[:2], 2) == 0 and view_start(starts, 4) == 0


def test_rows_hold_the_task_and_the_last_turns(env, policy):
    [episode] = demonstrations(env, policy, random.Random(3), 1)
    assert episode.info["memory"] == 2 and len(episode.actions) >= 4
    rows = turn_rows(episode)
    assert len(rows) == len(episode.actions)
    text = policy.tokenizer.decode
    turns = []   # each turn as text: the action + EOS, then the env's answer
    for i, action in enumerate(episode.actions):
        answer = "" if i + 1 == len(episode.actions) else env.observation_text(episode.observations[i + 1])
        turns.append(f"{action}<eos>{answer}")
    for i, row in enumerate(rows):
        assert text(row.action_ids) == episode.actions[i] + "<eos>" and row.info["turn"] == i
        assert text(row.prompt_ids) == "<bos>" + episode.prompt + "".join(turns[max(0, i - 2): i])
    # The rows' actions are exactly the policy's tokens of the transcript, in order.
    written = [t for t, m in zip(episode.action_ids, episode.action_mask) if m]
    assert [t for row in rows for t in row.action_ids] == written
    # Without memory an episode is its own row.
    plain = make_env("shell", seed=0, slip=0.0, typo=0.0, harm_slip=0.0)
    [whole] = demonstrations(plain, policy, random.Random(3), 1)
    assert "memory" not in whole.info and turn_rows(whole) == [whole]


def test_imitation_reads_one_row_per_action(env, policy):
    episodes = demonstrations(env, policy, random.Random(1), 3)
    input_ids, attention, completion_mask = pack_episodes(episodes, policy.pad_id)
    assert len(input_ids) == sum(len(e.actions) for e in episodes)
    assert completion_mask.sum() == sum(sum(e.action_mask) for e in episodes)
    assert input_ids.shape[1] < max(len(e.prompt_ids) + len(e.action_ids) for e in episodes)


def test_the_row_imitation_loss_equals_the_padded_one(env, policy):
    episodes = demonstrations(env, policy, random.Random(4), 6)
    padded = imitation_loss(policy, *pack_episodes(episodes, policy.pad_id))
    rows = completion_imitation_loss(policy, episode_batch(episodes, policy.pad_id))
    assert float(rows.detach()) == pytest.approx(float(padded.detach()), rel=1e-5)
    grads = []
    for loss in (padded, rows):
        policy.zero_grad()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_the_experts_mistakes_carry_no_loss(policy):
    """Imitation learns the recovery after a deliberate mistake, not the mistake: its row (with memory)
    or its tokens (without) are out of the loss, and the loss equals the loss over the other rows."""
    sloppy = make_env("shell", seed=0, memory=2, slip=0.0, typo=0.3, miscopy=0.5, harm_slip=0.0)
    episodes = demonstrations(sloppy, policy, random.Random(5), 8)
    mistakes = [(e, i) for e in episodes for i in e.info.get("mistakes", [])]
    assert len(mistakes) >= 4
    for episode, turn in mistakes:
        assert isinstance(episode.actions[turn], Mistake) and sum(turn_rows(episode)[turn].action_mask) == 0
    mistaken = sum(len(turn_rows(e)[i].action_ids) for e, i in mistakes)
    _, _, completion_mask = pack_episodes(episodes, policy.pad_id)
    assert completion_mask.sum() == sum(sum(e.action_mask) for e in episodes) - mistaken
    batch = episode_batch(episodes, policy.pad_id)
    assert batch.mask.sum() == completion_mask.sum()
    assert int(batch.lengths.sum()) == sum(len(row.action_ids) for row in rows_of(episodes)[0])
    kept = [row for row in rows_of(episodes)[0] if sum(row.action_mask) or not row.action_mask]
    alone = completion_imitation_loss(policy, pack_rows(kept, policy.pad_id))
    loss = completion_imitation_loss(policy, batch)
    assert float(loss.detach()) == pytest.approx(float(alone.detach()), rel=1e-5)
    # Without memory the whole transcript is one row, and the mistakes' tokens are masked in it.
    plain = make_env("shell", seed=0, max_files=1, distractors=1, slip=0.0, typo=0.3, miscopy=0.5, harm_slip=0.0)
    whole = demonstrations(plain, policy, random.Random(5), 8)
    _, _, completion_mask = pack_episodes(whole, policy.pad_id)
    learned = sum(sum(learned_mask(e)) for e in whole)
    assert completion_mask.sum() == learned < sum(sum(e.action_mask) for e in whole)


def pack_rows(rows, pad_id):
    return pack_completions([r.prompt_ids for r in rows], [r.action_ids for r in rows], pad_id)


def test_rollouts_read_bounded_contexts_and_log_probs_match_the_rows(env, policy, monkeypatch):
    seen = []
    real = agent_collect.sample

    def recording(policy, prompts, **kwargs):
        seen.extend(len(p) for p in prompts)
        return real(policy, prompts, **kwargs)

    monkeypatch.setattr(agent_collect, "sample", recording)
    problems = env.problems("heldout", 4, seed=0)
    groups = policy_episodes(policy, env, problems, 3, temperature=1.0, generator=torch.Generator().manual_seed(0))
    episodes = [e for g in groups for e in g]
    rows, owner = rows_of(episodes)
    assert len(seen) == len(rows) and max(seen) == max(len(r.prompt_ids) for r in rows)
    batch = episode_batch(episodes, policy.pad_id)
    with torch.no_grad():
        logprobs = policy.completion_logprobs(batch)[0]
    for i, row in enumerate(rows):
        assert torch.allclose(logprobs[i, : len(row.logprobs)], torch.tensor(row.logprobs), atol=1e-4)
    assert owner == sorted(owner) and set(owner) == set(range(len(episodes)))


def _scored(env, policy, samples=4):
    problems = env.problems("test", 3, seed=1)
    groups = policy_episodes(policy, env, problems, samples, temperature=1.0,
                             generator=torch.Generator().manual_seed(2))
    episodes = [e for g in groups for e in g]
    rewards = torch.tensor([[float(i % 2) for i in range(samples)] for _ in groups])  # a spread to credit
    return episodes, rewards


def test_outcome_advantages_repeat_over_an_episodes_rows(env, policy):
    episodes, rewards = _scored(env, policy)
    rollout, _ = rollout_batch(policy, episodes, rewards, PolicyGradientSettings(algorithm="rloo"))
    _, owner = rows_of(episodes)
    per_episode = (rewards - (rewards.sum(1, keepdim=True) - rewards) / (rewards.shape[1] - 1)).reshape(-1)
    assert rollout.advantages.tolist() == pytest.approx(per_episode[torch.tensor(owner)].tolist())
    vine = [[0.1 * (i + 1)] * len(e.actions) for i, e in enumerate(episodes)]
    rollout, _ = rollout_batch(policy, episodes, rewards, PolicyGradientSettings(algorithm="vineppo"),
                               turn_advantages=vine)
    flat = [a for per in vine for a in per]
    assert rollout.advantages[:, 0].tolist() == pytest.approx(flat)
    with pytest.raises(ValueError, match="per-action advantages"):
        rollout_batch(policy, episodes, rewards, PolicyGradientSettings(algorithm="vineppo"),
                      turn_advantages=[v[:-1] for v in vine])


def test_turn_gae_over_rows_equals_turn_gae_over_the_transcript():
    # Two episodes of 3 and 2 actions; each row's critic value sits at its first token.
    owner = [0, 0, 0, 1, 1]
    values = torch.tensor([[0.2, 9.0], [0.5, 9.0], [0.4, 9.0], [0.1, 9.0], [0.6, 9.0]])
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 1], [1, 0]], dtype=torch.float)
    rewards = torch.tensor([1.0, 0.0])
    advantages, returns, value_mask = row_turn_gae(rewards, values, mask, owner, 0.9, 0.8)
    # The same episodes as one transcript row each (one token per action, no env tokens).
    flat_mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.float)
    flat_mask_spaced = torch.zeros(2, 6)
    flat_mask_spaced[:, ::2] = flat_mask   # actions at 0, 2, 4 separated by env tokens
    flat_values = torch.zeros(2, 6)
    flat_values[0, ::2] = torch.tensor([0.2, 0.5, 0.4])
    flat_values[1, [0, 2]] = torch.tensor([0.1, 0.6])
    expected, expected_returns, _ = turn_gae(rewards, flat_values, flat_mask_spaced, 0.9, 0.8)
    want = [expected[0, 0], expected[0, 2], expected[0, 4], expected[1, 0], expected[1, 2]]
    assert advantages[:, 0].tolist() == pytest.approx([float(w) for w in want])
    assert advantages[1, 1] == 0 and advantages[0, 1] == advantages[0, 0]       # padding: none; tokens share
    assert returns[3, 0] == pytest.approx(float(expected_returns[1, 0]))
    assert value_mask[:, 0].tolist() == [1.0] * 5 and value_mask[:, 1].sum() == 0


def test_ppo_rows_and_the_value_scorer_read_the_state_before_each_action(env, policy):
    critic = LMPolicy.build(LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                   max_seq_len=256), env.alphabet, seed=0)
    critic.add_value_head()
    episodes, rewards = _scored(env, critic, samples=2)
    with pytest.raises(ValueError, match="credit = 'turn'"):
        rollout_batch(critic, episodes, rewards, PolicyGradientSettings(algorithm="ppo"))
    rollout, _ = rollout_batch(critic, episodes, rewards, PolicyGradientSettings(algorithm="ppo", credit="turn"))
    rows, _ = rows_of(episodes)
    assert rollout.value_mask.shape[0] == len(rows) and rollout.value_mask[:, 0].sum() == len(rows)
    scores = ValueScorer(critic).score(episodes)
    for episode, score in zip(episodes, scores):
        last = turn_rows(episode)[-1]
        ids = torch.tensor([last.prompt_ids])
        with torch.no_grad():
            _, values = critic.sequence_logprobs(ids, torch.ones_like(ids), return_values=True)
        assert score == pytest.approx(float(values[0, -1]), abs=1e-5)
