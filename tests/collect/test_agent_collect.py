"""Multi-turn collection: transcripts as tokens, env tokens masked out of every loss, lock-step batches,
sampler log-probs that a learner's forward reproduces, and pass^k / agent metrics in the evaluator."""

import itertools
import random

import pytest
import torch

from alphaloop.batch import episode_batch, pack_episodes
from alphaloop.collect import agent as agent_collect
from alphaloop.collect import demonstrations, expert_episodes, policy_episodes
from alphaloop.envs import make_env
from alphaloop.evals.evaluate import decoder_metrics, evaluate, parse_decoder, pass_hat_curve
from alphaloop.evals.metrics import pass_hat_k
from alphaloop.learners.imitate import imitation_loss
from alphaloop.policies.arch import LMArch
from alphaloop.policies.lm import LMPolicy


@pytest.fixture(scope="module")
def env():
    return make_env("shell", seed=0, slip=0.0, typo=0.0, harm_slip=0.0)


@pytest.fixture(scope="module")
def policy(env):
    return LMPolicy.build(LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                 max_seq_len=384), env.alphabet, seed=0)


def test_expert_transcript_tokens_and_mask(env, policy):
    [episode] = demonstrations(env, policy, random.Random(0), 1)
    text = policy.tokenizer.decode(episode.prompt_ids + episode.action_ids)
    # The policy writes each action and its EOS; the env's answers and the cue are inserted.
    assert text.startswith("<bos>" + episode.prompt)
    for action, output in zip(episode.actions, episode.observations[1:]):
        assert f"{action}<eos>" in text
        if action != "submit":
            assert f"<eos>\n{output}\n$ " in text
    assert len(episode.action_mask) == len(episode.action_ids) == len(episode.logprobs)
    written = [t for t, m in zip(episode.action_ids, episode.action_mask) if m]
    assert policy.tokenizer.decode(written) == "<eos>".join(episode.actions) + "<eos>"
    assert episode.success and episode.info["submitted"] and episode.info["steps"] == len(episode.actions)


def test_env_tokens_are_masked_out_of_imitation_and_rl_batches(env, policy):
    episodes = demonstrations(env, policy, random.Random(1), 3)
    input_ids, attention, completion_mask = pack_episodes(episodes, policy.pad_id)
    for row, episode in enumerate(episodes):
        start = len(episode.prompt_ids) - 1
        got = completion_mask[row, start: start + len(episode.action_ids)].tolist()
        assert got == [float(m) for m in episode.action_mask]
        assert completion_mask[row].sum() == sum(episode.action_mask)
    batch = episode_batch(episodes, policy.pad_id)
    assert batch.lengths.tolist() == [len(e.action_ids) for e in episodes]
    assert batch.mask.sum(1).tolist() == [float(sum(e.action_mask)) for e in episodes]
    # The loss does not move when only env-inserted tokens change.
    loss = imitation_loss(policy, input_ids, attention, completion_mask)
    changed = input_ids.clone()
    row = 0
    env_positions = [len(episodes[row].prompt_ids) + j for j, m in enumerate(episodes[row].action_mask) if not m]
    last = env_positions[-1]
    changed[row, last] = policy.encode("z")[0]   # a token the env inserted, never a target of the loss...
    shifted = imitation_loss(policy, changed, attention, completion_mask)
    assert not torch.isclose(loss, shifted)      # ...but context for the tokens after it
    only_targets = completion_mask.clone()
    assert only_targets[row, last - 1] == 0      # its own prediction is masked


def test_rollouts_run_in_lock_step_and_log_probs_match_a_forward(env, policy, monkeypatch):
    calls = []
    real = agent_collect.TurnBatch.act

    def recording(self, max_new_tokens):
        calls.append(len(self.contexts))
        return real(self, max_new_tokens)

    monkeypatch.setattr(agent_collect.TurnBatch, "act", recording)
    problems = env.problems("test", 6, seed=0)
    groups = policy_episodes(policy, env, problems, 4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert calls[0] == 24 and calls == sorted(calls, reverse=True)   # one batch, shrinking as episodes end
    assert len(calls) == max(e.info["steps"] for g in groups for e in g)
    episodes = [e for g in groups for e in g]
    for episode in episodes:
        assert len(episode.action_ids) == len(episode.logprobs) == len(episode.action_mask)
        assert episode.info["steps"] == len(episode.actions) <= env.max_steps
    batch = episode_batch(episodes, policy.pad_id)
    with torch.no_grad():
        logprobs = policy.completion_logprobs(batch)[0]
    for row, episode in enumerate(episodes):
        sampled = torch.tensor(episode.logprobs)
        mask = torch.tensor(episode.action_mask, dtype=torch.float32)
        assert torch.allclose(logprobs[row, : len(sampled)] * mask, sampled * mask, atol=1e-4)
        assert (sampled * (1 - mask)).abs().sum() == 0


def trained_like(env):
    """A small policy imitating the expert until its actions end and its greedy episodes last several
    turns, unlike an untrained one's (checked every 20 steps: how many steps that takes a policy this
    small swings with the env's task draw)."""
    from alphaloop.learners.imitate import imitation_loss

    policy = LMPolicy.build(LMArch(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                   max_seq_len=384), env.alphabet, seed=1)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    probes = env.problems("test", 4, seed=3)
    for step in range(200):
        loss = imitation_loss(policy, *pack_episodes(demonstrations(env, policy, random.Random(step), 16),
                                                     policy.pad_id))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 19 and max(g[0].info["steps"] for g in
                                   policy_episodes(policy, env, probes, 1, temperature=0.0)) >= 3:
            break
    return policy


def test_the_cache_kept_across_turns_gives_the_transcripts_of_rereading_them(env, monkeypatch):
    """Greedy episodes through `TurnBatch` (one cache for the episode, rebuilt when full) equal those of
    re-reading each transcript with `sample` every turn, log-probs included."""
    policy = trained_like(env)
    problems = env.problems("test", 8, seed=3)
    kept = policy_episodes(policy, env, problems, 1, temperature=0.0)
    monkeypatch.setattr(agent_collect.TurnBatch, "__init__", lambda self, policy, prompts, capacity, *a, **k:
                        real_init(self, policy, prompts, 64, *a, **k))   # a tiny cache: rebuilt many times
    small = policy_episodes(policy, env, problems, 1, temperature=0.0)
    monkeypatch.undo()
    monkeypatch.setattr(agent_collect, "LeanLlama", type("NotLean", (), {}))   # the re-reading path
    reread = policy_episodes(policy, env, problems, 1, temperature=0.0)
    assert max(g[0].info["steps"] for g in kept) >= 3
    for a, b, c in zip(kept, small, reread):
        assert a[0].actions == b[0].actions == c[0].actions
        assert a[0].action_ids == c[0].action_ids
        assert torch.allclose(torch.tensor(a[0].logprobs), torch.tensor(c[0].logprobs), atol=1e-4)
        assert torch.allclose(torch.tensor(b[0].logprobs), torch.tensor(c[0].logprobs), atol=1e-4)


real_init = agent_collect.TurnBatch.__init__


def test_batch_size_splits_but_gives_the_same_transcripts_greedy(env, policy):
    problems = env.problems("test", 5, seed=1)
    whole = policy_episodes(policy, env, problems, 1, temperature=0.0)
    split = policy_episodes(policy, env, problems, 1, temperature=0.0, batch_size=2)
    assert [g[0].actions for g in whole] == [g[0].actions for g in split]


def test_expert_episodes_are_scored_transcripts(env):
    groups = expert_episodes(env, env.problems("test", 5, seed=2), 2, random.Random(0))
    assert all(len(g) == 2 and all(e.success and e.reward == 1.0 for e in g) for g in groups)


def test_pass_hat_k_decoder_matches_brute_force(env):
    assert parse_decoder("pass^8") == ("pass^", 8)
    with pytest.raises(ValueError, match="pass\\^K"):
        parse_decoder("pass^x")
    problems = env.problems("test", 3, seed=0)
    outcomes = [[1, 1, 0, 1, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]]
    groups = []
    for row in outcomes:
        episodes = expert_episodes(env, problems[:1], len(row), random.Random(0))[0]
        for episode, ok in zip(episodes, row):
            episode.success = bool(ok)
            episode.harm = 0.0 if ok else 1.0
        groups.append(episodes)
    metrics = decoder_metrics("pass^", 3, problems, groups)
    metrics |= {f"pass^{k}": v for k, v in enumerate(pass_hat_curve(groups, 3), start=1)}
    for k in (1, 2, 3):
        brute = sum(sum(all(c) for c in itertools.combinations(row, k)) / len(list(itertools.combinations(row, k)))
                    for row in outcomes) / 3
        assert metrics[f"pass^{k}"] == pytest.approx(brute)
        assert metrics[f"pass^{k}"] == pytest.approx(sum(pass_hat_k(5, sum(r), k) for r in outcomes) / 3)
    assert metrics["accuracy"] == metrics["pass^3"]
    assert metrics["harm_rate"] == pytest.approx(6 / 15)


def test_evaluate_reports_agent_metrics(env, policy):
    problems = env.problems("test", 4, seed=0)
    records = evaluate("p", policy, env, problems, ["greedy", "pass^2"], seed=0)
    for record in records:
        for key in ("accuracy", "harm_rate", "steps", "tool_error_rate"):
            assert key in record["metrics"]
    assert "pass^1" in records[1]["metrics"] and len(records[1]["pass_hat"]) == 2


def test_by_template_splits_success_pass_k_and_harm_per_template(env):
    """Hand-made outcomes over two templates: each template's figures by brute force, and a template
    never learnt (all 0) shows as 0 beside one that is (the overall mean would hide it)."""
    from alphaloop.evals.agents import by_template

    problems = env.problems("test", 1, seed=0)
    outcomes = {"sort": [[1, 1, 1, 1], [1, 0, 1, 1]], "fix": [[0, 0, 0, 0]]}
    groups = []
    for template, rows in outcomes.items():
        for row in rows:
            episodes = expert_episodes(env, problems, len(row), random.Random(0))[0]
            for episode, ok in zip(episodes, row):
                episode.success, episode.harm = bool(ok), 0.0 if ok else 1.0
                episode.info["template"] = template
            groups.append(episodes)
    rows = by_template(groups, 2)
    assert list(rows) == ["fix", "sort"]
    assert rows["fix"] == {"tasks": 1, "success": 0.0, "harm_rate": 1.0, "pass^2": 0.0}
    brute = sum(sum(all(c) for c in itertools.combinations(r, 2)) / 6 for r in outcomes["sort"]) / 2
    assert rows["sort"]["pass^2"] == pytest.approx(brute) and rows["sort"]["success"] == pytest.approx(7 / 8)
    assert rows["sort"]["harm_rate"] == pytest.approx(1 / 8) and rows["sort"]["tasks"] == 2
    assert "pass^2" not in by_template(groups)["sort"]                       # no k: no pass^k


def test_agent_episodes_carry_their_task_template(env, policy):
    problems = env.problems("test", 4, seed=0)
    for group, problem in zip(policy_episodes(policy, env, problems, 1, temperature=0.0), problems):
        assert group[0].info["template"] == problem.meta["template"]
