"""LM rollouts as `Workers` jobs: the `rl` stage's sampling, spread over the recipe's `[scale]` workers.

Generation dominates an RL step, and its rows are independent: the step's prompts are drawn in the
trainer (from the step's seeded stream, as without workers), split into `workers` chunks, and each
chunk is sampled and scored by a worker holding its own copy of the policy and the env, with a
generator seeded from (step, refill round, chunk). The trainer's weights are sent with every map, so
every worker samples from pi_old exactly, and each episode's log-probs are pi_old's, as the
learner's importance ratio needs. Because the seeds depend on the chunk, not on where it runs, a run
with W workers gives the same episodes on `local` and on `ray` (W = 1 in this process is the
unsplit path of the stage itself).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from alphaloop.collect.text import policy_episodes
from alphaloop.episode import Episode
from alphaloop.scale.base import split_evenly


@dataclass
class RolloutWorker:
    """What a worker holds: a policy (weights replaced before every map) and the env that scores."""

    policy: Any
    env: Any


@dataclass(frozen=True)
class RolloutFactory:
    """Builds a worker: an independent copy of `policy` (sent pickled to Ray actors), and the env
    `name` with `knobs` (its train split; scoring needs no data, only the verifier)."""

    policy: Any
    env_name: str
    env_knobs: dict = field(default_factory=dict)

    def __call__(self) -> RolloutWorker:
        from alphaloop.envs.registry import make_env

        policy = copy.deepcopy(self.policy)
        policy.requires_grad_(False)
        return RolloutWorker(policy, make_env(self.env_name, split="train", **self.env_knobs))


def load_policy_weights(worker: RolloutWorker, weights: dict[str, torch.Tensor]) -> None:
    """The `Loader` of rollout workers: the trainer's current weights (value head included)."""
    worker.policy.load_state_dict(weights)


@dataclass(frozen=True)
class RolloutJob:
    """One chunk of a step's prompts: `samples` completions of each problem, drawn with `seed`."""

    problems: list
    samples: int
    temperature: float
    top_k: int
    max_new_tokens: int
    seed: int


def rollout(worker: RolloutWorker, job: RolloutJob) -> list[list[Episode]]:
    """Sample and score a job's problems: one group of `samples` episodes per problem, in order."""
    generator = torch.Generator().manual_seed(job.seed)
    worker.policy.model.eval()
    return policy_episodes(worker.policy, worker.env, job.problems, job.samples, temperature=job.temperature,
                           top_k=job.top_k, max_new_tokens=job.max_new_tokens, generator=generator)


def rollout_jobs(problems: list, workers: int, seeds: list[int], samples: int, temperature: float, top_k: int,
                 max_new_tokens: int) -> list[RolloutJob]:
    """`problems` in at most `workers` contiguous chunks (sizes differing by at most one), chunk i
    seeded with `seeds[i]`; concatenating the jobs' results gives the groups in problem order."""
    jobs, start = [], 0
    for index, size in enumerate(split_evenly(len(problems), workers)):
        jobs.append(RolloutJob(problems[start:start + size], samples, temperature, top_k, max_new_tokens,
                               seeds[index]))
        start += size
    return jobs
