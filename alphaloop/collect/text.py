"""Text envs: Env x Policy -> Episodes. Shared by imitation, evaluation and reinforcement learning.

Problems are replicated `samples` times and generated in large batches by our KV-cache sampler;
each completion is scored by the env's verifier and becomes one `Episode`. The env's expert is a
policy too: its demonstrations are Episodes of the same kind (without sampling log-probs).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from alphaloop.collect.agent import agent_demonstrations, agent_episodes, expert_agent_episodes
from alphaloop.episode import Episode
from alphaloop.policies.sampler import sample


def is_agent_env(env) -> bool:
    """Multi-turn envs (`envs.agent.AgentEnv`) are played turn by turn (`collect/agent.py`)."""
    return bool(getattr(env, "multi_turn", False))


def score_episode(env, problem, episode: Episode) -> Episode:
    """Fill reward, success and the parsed answer from the env's verifier."""
    completion = episode.completion
    success = bool(env.verify(problem, completion))
    episode.rewards = [1.0 if success else 0.0]
    episode.success = success
    episode.info["answer"] = env.parse_answer(completion)
    return episode


def policy_episodes(
    policy,
    env,
    problems: Sequence,
    samples: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> list[list[Episode]]:
    """`samples` scored episodes per problem (grouped by problem), sampled by the LM policy.

    temperature 0 is greedy decoding; then all `samples` copies would be equal, so callers ask
    for samples=1. On a multi-turn env each episode is a whole transcript (`collect/agent.py`).
    """
    if is_agent_env(env):
        return agent_episodes(policy, env, problems, samples, temperature, top_k, max_new_tokens, generator,
                              batch_size)
    if max_new_tokens is None:
        max_new_tokens = env.max_completion_chars + 1  # +1 for EOS
    prompts = [policy.prompt_ids(p.prompt) for p in problems]
    rows = [(i, prompts[i]) for i in range(len(problems)) for _ in range(samples)]
    groups: list[list[Episode]] = [[] for _ in problems]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        out = sample(policy, [ids for _, ids in chunk], max_new_tokens=max_new_tokens, temperature=temperature,
                     top_k=top_k, generator=generator)
        for (i, ids), comp_ids, logps, truncated in zip(chunk, out.completion_ids, out.logprobs, out.truncated):
            episode = Episode(
                observations=[problems[i].prompt], actions=[policy.decode(comp_ids)], prompt_ids=list(ids),
                action_ids=list(comp_ids), logprobs=list(logps), truncated=bool(truncated),
                info={"problem": i},
            )
            groups[i].append(score_episode(env, problems[i], episode))
    return groups


def expert_episode(env, problem, rng: random.Random, index: int = 0) -> Episode:
    """One demonstration of the env's (possibly imperfect) expert on `problem`, unscored."""
    return Episode(observations=[problem.prompt], actions=[env.expert(problem, rng)], info={"problem": index})


def expert_episodes(env, problems: Sequence, samples: int, rng: random.Random) -> list[list[Episode]]:
    """The env's expert as a policy: `samples` demonstrations per problem, scored."""
    if is_agent_env(env):
        return expert_agent_episodes(env, problems, samples, rng)
    return [[score_episode(env, problem, expert_episode(env, problem, rng, i)) for _ in range(samples)]
            for i, problem in enumerate(problems)]


def demonstrations(env, policy, rng: random.Random, size: int, split: str = "train") -> list[Episode]:
    """`size` fresh problems of `split`, each with one expert demonstration, tokenised for `policy`:
    `prompt_ids` as the policy prompts, `action_ids` the demonstration + EOS (imitation learns to
    stop). Problem and demonstration are drawn in turn from `rng`, so a step's batch depends only on
    the stream it is given. Not scored: imitation copies the expert, right or wrong. On a multi-turn
    env a demonstration is the expert's whole transcript, the env's tokens masked out."""
    if is_agent_env(env):
        return agent_demonstrations(env, policy, rng, size, split)
    episodes = []
    for _ in range(size):
        episode = expert_episode(env, env.sample_problem(rng, split), rng)
        episode.prompt_ids = policy.prompt_ids(episode.prompt)
        episode.action_ids = policy.encode(episode.completion) + [policy.eos_id]
        episodes.append(episode)
    return episodes
