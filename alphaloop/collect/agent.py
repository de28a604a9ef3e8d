"""Agent envs: Env x Policy -> multi-turn Episodes, many episodes in lock-step.

Every turn, all episodes still running are extended together by one batched generation over the KV
cache, which stops each row at its EOS (the end of an action); the env then answers each row's
action and its output tokens are appended to that row. Rows finish
independently (a `submit`, the step limit, an action cut off without EOS, or a transcript that
would outgrow the model's context); the batch shrinks as they do. Generation never falls back to
one episode at a time.

Our Llama keeps the batch's KV cache across turns (`policies/turns.py`): each turn decodes the
actions and prefills only the env's answers. Other models re-read each transcript every turn.

One episode is one `Episode`: `action_ids` is the transcript after the prompt, the policy's tokens
(log-probs from the sampler, `action_mask` 1) interleaved with the env's (log-prob 0, mask 0), so
imitation and RL train on the policy's tokens only.

With an env's `memory = N` (`alphaloop/agent_memory.py`) the policy reads the prompt and the last N
turns before each action: the turn cache does not apply (the oldest turn leaves the context), so
each turn re-reads the rows' bounded contexts in one batched `sampler.sample`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from alphaloop.agent_memory import turn_rows, view_start
from alphaloop.envs.agent import SUBMIT, Mistake, Outcome
from alphaloop.episode import Episode
from alphaloop.errors import UserError
from alphaloop.policies.llama import LeanLlama
from alphaloop.policies.sampler import sample
from alphaloop.policies.turns import TurnBatch


@dataclass
class Transcript:
    """One episode being played: the env state, the token stream and what happened so far."""

    problem_index: int
    problem: object
    outcome: Outcome
    prompt_ids: list[int]
    action_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    action_mask: list[int] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    cut: str | None = None      # why the episode ended without a submit ("steps", "action", "context")
    done: bool = False
    memory: int = 0             # turns the policy reads besides the prompt (0: all)
    starts: list[int] = field(default_factory=list)   # where each action begins in action_ids
    mistakes: list[int] = field(default_factory=list)  # the expert's deliberate mistakes (`envs.agent.Mistake`)

    def context(self) -> list[int]:
        """What the policy reads before its next action: the prompt and its last `memory` turns."""
        return self.prompt_ids + self.action_ids[view_start(self.starts, self.memory):]

    def add_action(self, env, text: str, ids: Sequence[int] = (), logprobs: Sequence[float] = ()) -> str | None:
        """Apply one action (its tokens `ids`, EOS included); return the env's inserted text, or None
        when the episode is over."""
        self.actions.append(text)
        self.starts.append(len(self.action_ids))
        self.action_ids += list(ids)
        self.logprobs += list(logprobs) or [0.0] * len(ids)
        self.action_mask += [1] * len(ids)
        turn = env.act(self.problem, self.outcome.state, text)
        self.outcome.outputs.append(turn.output)
        self.outcome.steps += 1
        self.outcome.tool_errors += turn.error
        if turn.done:
            self.outcome.submitted = True
            self.done = True
        elif self.outcome.steps >= env.max_steps:
            self.cut, self.done = "steps", True
        return None if self.done else env.observation_text(turn.output)

    def unfinished_action(self, text: str, ids: Sequence[int], logprobs: Sequence[float], budget: int) -> None:
        """An action cut at `budget` tokens without EOS: a failed step that ends the episode."""
        self.actions.append(text)
        self.starts.append(len(self.action_ids))
        self.action_ids += list(ids)
        self.logprobs += list(logprobs)
        self.action_mask += [1] * len(ids)
        self.outcome.outputs.append(f"error: no action ends within {budget} tokens")
        self.outcome.steps += 1
        self.outcome.tool_errors += 1
        self.cut, self.done = "action", True

    def add_observation(self, ids: Sequence[int]) -> None:
        self.action_ids += list(ids)
        self.logprobs += [0.0] * len(ids)
        self.action_mask += [0] * len(ids)

    def episode(self, env) -> Episode:
        outcome = env.judge(self.problem, self.outcome)
        return Episode(
            observations=[self.problem.prompt, *outcome.outputs], actions=list(self.actions),
            prompt_ids=list(self.prompt_ids), action_ids=self.action_ids, logprobs=self.logprobs,
            action_mask=self.action_mask, rewards=[1.0 if outcome.success else 0.0], success=outcome.success,
            harm=outcome.harm,
            info={"problem": self.problem_index, "steps": outcome.steps, "tool_errors": outcome.tool_errors,
                  "submitted": outcome.submitted, "cut": self.cut, "answer": SUBMIT if outcome.submitted else None,
                  "horizon": self.problem.meta.get("horizon"), **({"memory": self.memory} if self.memory else {}),
                  **({"mistakes": list(self.mistakes)} if self.mistakes else {}),
                  **({"template": str(self.problem.meta["template"])} if "template" in self.problem.meta else {})},
        )


def context_limit(policy) -> int:
    config = policy.model.config
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 1024))


def agent_episodes(policy, env, problems: Sequence, samples: int = 1, temperature: float = 1.0, top_k: int = 0,
                   max_new_tokens: int | None = None, generator: torch.Generator | None = None,
                   batch_size: int = 256) -> list[list[Episode]]:
    """`samples` episodes per problem (grouped by problem), played by the LM policy in lock-step batches of
    up to `batch_size` episodes. `max_new_tokens` bounds one action (default: the env's longest + EOS)."""
    runs = [Transcript(i, problem, Outcome(env.initial_state(problem)), policy.prompt_ids(problem.prompt),
                       memory=env.memory)
            for i, problem in enumerate(problems) for _ in range(samples)]
    play(policy, env, runs, temperature, top_k, max_new_tokens, generator, batch_size)
    groups: list[list[Episode]] = [[] for _ in problems]
    for run in runs:
        groups[run.problem_index].append(run.episode(env))
    return groups


def play(policy, env, runs: list[Transcript], temperature: float = 1.0, top_k: int = 0,
         max_new_tokens: int | None = None, generator: torch.Generator | None = None, batch_size: int = 256) -> None:
    """Play the transcripts `runs` (fresh, or resumed part-way) to their ends, `batch_size` at a time."""
    per_action = max_new_tokens or env.max_completion_chars + 1
    limit = context_limit(policy)
    was_training = policy.model.training
    policy.model.eval()
    try:
        for start in range(0, len(runs), batch_size):
            _play(policy, env, runs[start: start + batch_size], per_action, limit, temperature, top_k, generator)
    finally:
        policy.model.train(was_training)


def _play(policy, env, active: list[Transcript], per_action: int, limit: int, temperature: float, top_k: int,
          generator: torch.Generator | None) -> None:
    """Play the episodes `active` to their ends in lock-step. Our Llama keeps one KV cache for the batch
    across turns (`policies.turns.TurnBatch`: each turn prefills only the env's answers); any other
    model re-reads each transcript every turn through `sampler.sample`."""
    cached = isinstance(policy.model, LeanLlama) and not any(r.memory for r in active)
    turns = (TurnBatch(policy, [r.context() for r in active], limit + per_action, temperature, top_k, generator)
             if cached else None)
    while active:
        if turns is not None:
            actions = turns.act(per_action)
        else:
            out = sample(policy, [r.context() for r in active], max_new_tokens=per_action, temperature=temperature,
                         top_k=top_k, generator=generator)
            actions = list(zip(out.completion_ids, out.logprobs, out.truncated))
        still, kept, inserts = [], [], []
        for row, (run, (ids, logprobs, truncated)) in enumerate(zip(active, actions)):
            if truncated:  # no EOS within the action budget: the action never ended
                run.unfinished_action(policy.decode(ids), ids, logprobs, per_action)
                continue
            inserted = run.add_action(env, policy.decode(ids[:-1]), ids, logprobs)
            if inserted is None:
                continue
            inserted_ids = policy.encode(inserted)
            if len(run.context()) + len(inserted_ids) + per_action > limit:
                run.cut, run.done = "context", True
                continue
            run.add_observation(inserted_ids)
            still.append(run)
            kept.append(row)
            inserts.append(inserted_ids)
        if turns is not None and still:
            turns.keep(kept)
            turns.observe(inserts)
        active = still


def expert_transcript(env, problem, rng: random.Random, policy=None, index: int = 0) -> Episode:
    """The env's scripted expert playing `problem`; with `policy`, tokenised as the policy would see and
    write it (each action + EOS, the env's answers masked out): an imitation example. Its deliberate
    mistakes (`Mistake` actions) are listed in `info["mistakes"]`, and imitation gives them no loss."""
    prompt_ids = policy.prompt_ids(problem.prompt) if policy is not None else []
    run = Transcript(index, problem, Outcome(env.initial_state(problem)), prompt_ids, memory=env.memory)
    for action in env.expert_actions(problem, rng):
        if isinstance(action, Mistake):
            run.mistakes.append(len(run.actions))
        ids = policy.encode(action) + [policy.eos_id] if policy is not None else []
        inserted = run.add_action(env, action, ids)
        if inserted is None:
            break
        run.add_observation(policy.encode(inserted) if policy is not None else [])
    return run.episode(env)


def expert_agent_episodes(env, problems: Sequence, samples: int, rng: random.Random) -> list[list[Episode]]:
    """The expert as a policy: `samples` scored transcripts per problem."""
    return [[expert_transcript(env, problem, rng, index=i) for _ in range(samples)]
            for i, problem in enumerate(problems)]


def agent_demonstrations(env, policy, rng: random.Random, size: int, split: str = "train") -> list[Episode]:
    """`size` fresh tasks of `split`, each with one tokenised expert transcript (imitation data)."""
    episodes = [expert_transcript(env, env.sample_problem(rng, split), rng, policy) for _ in range(size)]
    longest = max(len(row.prompt_ids) + len(row.action_ids) for e in episodes for row in turn_rows(e))
    if longest > context_limit(policy):
        what = f"the context of one action (memory {env.memory})" if env.memory else "an expert transcript"
        raise UserError(f"{what} of env {env.name!r} is {longest} tokens, longer than the policy's "
                        f"context of {context_limit(policy)}: raise [policy.arch] max_seq_len"
                        + ("" if env.memory else " or set the env's memory knob"))
    return episodes
