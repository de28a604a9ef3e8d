"""Monte Carlo values of an agent episode's intermediate states (VinePPO, Kazemnejad et al. 2024).

The value of the state s_i an episode was in before its action i is estimated without a critic:
replay the episode's first i actions into a fresh env state (the env is deterministic and its
state is rebuilt from the task), keep the transcript's tokens up to there, and let the current
policy finish it K times; V^(s_i) = the mean reward of those K endings. The estimate is unbiased
(a critic's is not), at the price of K partial roll-outs per state.

Episodes of one task often share their first turns (every episode starts with `ls`, and sees the
same answer): identical prefixes are estimated once. All roll-outs of a step run together in the
lock-step batches of `collect/agent.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from alphaloop.agent_memory import action_spans, memory_of, token_runs
from alphaloop.collect.agent import Transcript, play
from alphaloop.envs.agent import Outcome
from alphaloop.episode import Episode


@dataclass
class RolloutCost:
    """What the value estimates cost: distinct states estimated, roll-outs played, actions generated."""

    states: int = 0
    rollouts: int = 0
    actions: int = 0


def resumed_transcript(env, problem, episode: Episode, turns: int, index: int = 0) -> Transcript:
    """The transcript of `episode` just before its action `turns` (0-based), with the env state replayed."""
    run = Transcript(index, problem, Outcome(env.initial_state(problem)), list(episode.prompt_ids),
                     memory=memory_of(episode))
    taken = 0
    for start, end, is_action in token_runs(episode.action_mask):
        if is_action:
            if taken == turns:
                break
            run.add_action(env, episode.actions[taken], episode.action_ids[start:end], episode.logprobs[start:end])
            taken += 1
        else:
            run.add_observation(episode.action_ids[start:end])
    if taken != turns or run.done:
        raise ValueError(f"episode has no state before action {turns} (it took {len(episode.actions)} actions)")
    return run


def state_values(policy, env, problems: Sequence, groups: Sequence[Sequence[Episode]], samples: int,
                 temperature: float = 1.0, top_k: int = 0, max_new_tokens: int | None = None,
                 generator: torch.Generator | None = None) -> tuple[list[list[list[float]]], RolloutCost]:
    """V^(s_i) for every episode of `groups` (group g played `problems[g]`) and each of its actions i:
    values[g][e] = [v_0, ..., v_{T-1}].

    v_0 (the task before any action) is the mean reward of the group's other episodes (the RLOO
    baseline: those are already K roll-outs from s_0); with a group of one it is estimated like the
    others. v_i for i >= 1: the mean reward of `samples` fresh roll-outs from s_i."""
    jobs: dict[tuple[int, tuple[int, ...]], list[Transcript]] = {}
    wanted: list[list[list[tuple[int, tuple[int, ...]] | float]]] = []
    for g, (problem, group) in enumerate(zip(problems, groups)):
        rewards = [e.reward for e in group]
        per_group = []
        for e, episode in enumerate(group):
            starts = [start for start, _ in action_spans(episode.action_mask)]
            keys: list[tuple[int, tuple[int, ...]] | float] = []
            for turn, start in enumerate(starts):
                if turn == 0 and len(group) > 1:
                    keys.append((sum(rewards) - rewards[e]) / (len(group) - 1))
                    continue
                key = (g, tuple(episode.action_ids[:start]))
                if key not in jobs:
                    jobs[key] = [resumed_transcript(env, problem, episode, turn, g) for _ in range(samples)]
                keys.append(key)
            per_group.append(keys)
        wanted.append(per_group)
    runs = [run for batch in jobs.values() for run in batch]
    before = {id(run): run.outcome.steps for run in runs}
    play(policy, env, runs, temperature, top_k, max_new_tokens, generator)
    value_of = {key: sum(run.episode(env).reward for run in batch) / len(batch) for key, batch in jobs.items()}
    cost = RolloutCost(len(jobs), len(runs), sum(run.outcome.steps - before[id(run)] for run in runs))
    values = [[[value_of[k] if isinstance(k, tuple) else float(k) for k in keys] for keys in per_group]
              for per_group in wanted]
    return values, cost

