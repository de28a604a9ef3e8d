"""Verification examples: teach a policy to judge candidates, so judge@K has a real signal.

`JudgeScorer` (scorers/judge.py) scores a candidate y for prompt x by the policy's own log-odds

    s(x, y) = log pi(yes | x, y, check) - log pi(no | x, y, check).

A policy trained only on demonstrations has never seen a verdict after `<x><y><check>`, so s is
noise. Generative verifiers (Zhang et al. 2024, "Generative Verifiers: Reward Modeling as
Next-Token Prediction") fix that with plain next-token prediction on verification data:

    L_verify(theta) = - mean_i log pi_theta(v_i | x_i, y_i, check),   v_i = yes iff verify(x_i, y_i)

trained jointly with the imitation loss. The labels come from the env's exact verifier, so they
are free and never wrong. The loss covers the verdict token(s) only: the policy is never taught
to *write* a wrong or corrupted candidate, only to recognise one.

Where the candidates come from (a fixed mix, per row):
  1/2  the policy's own sample at temperature 1: the errors the judge must catch at test time;
  1/4  the expert's demonstration: a deliberately imperfect expert supplies realistic wrong chains;
  1/4  the expert's demonstration with one character of its last word (where these envs write
       the final answer, e.g. `>132`) replaced by another of the same kind (digit by digit, letter
       by letter): a hard negative, one character off. The verifier still labels it: a change that
       leaves the answer right stays a "yes".
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from alphaloop.collect import policy_episodes
from alphaloop.scorers.judge import JudgeTemplate, default_template


def corrupt(text: str, alphabet: str, rng: random.Random) -> str:
    """`text` with one digit or letter of its last word replaced by a different one of the same kind.

    Replacements come from `alphabet`. Only characters with an alternative of their kind are
    candidates, those of the last whitespace-separated word first (anywhere if it has none); text
    without any is returned unchanged. The caller's verifier, not this function, decides the label."""
    kinds = {kind: [c for c in alphabet if test(c)] for kind, test in (("digit", str.isdigit),
                                                                       ("alpha", str.isalpha))}

    def kind_of(c: str) -> str | None:
        return "digit" if c.isdigit() else "alpha" if c.isalpha() else None

    positions = [i for i, c in enumerate(text) if kind_of(c) and len(kinds[kind_of(c)]) > 1]
    last_word = len(text.rstrip()) - len(text.rstrip().split()[-1]) if text.strip() else 0
    positions = [i for i in positions if i >= last_word] or positions
    if not positions:
        return text
    i = rng.choice(positions)
    replacement = rng.choice([c for c in kinds[kind_of(text[i])] if c != text[i]])
    return text[:i] + replacement + text[i + 1:]


def verification_rows(env, policy, rng: random.Random, size: int, generator: torch.Generator,
                      template: JudgeTemplate | None = None, own_share: float = 0.5,
                      ) -> tuple[list[list[int]], list[list[int]], float]:
    """`size` rows (context ids, verdict ids) on fresh train problems, and the share labelled yes.

    `own_share` of the rows judge the policy's own samples, the rest the expert's demonstrations,
    every second one corrupted. The context is `<prompt><candidate><check>` exactly as `JudgeScorer`
    builds it at test time (the policy's own candidates as sampled token ids, EOS dropped), so
    training and scoring see the same tokens."""
    if not 0.0 <= own_share <= 1.0:
        raise ValueError(f"own_share: expected a share in [0, 1], got {own_share}")
    template = template or default_template(policy.tokenizer)
    check, yes, no = (policy.encode(t) for t in (template.check, template.yes, template.no))
    problems = [env.sample_problem(rng, "train") for _ in range(size)]
    own = int(size * own_share)
    contexts, verdicts, positives = [], [], 0
    if own:
        episodes = [g[0] for g in policy_episodes(policy, env, problems[:own], 1, temperature=1.0,
                                                  generator=generator, batch_size=max(own, 1))]
        for episode in episodes:
            ids = list(episode.action_ids)
            if ids and ids[-1] == policy.eos_id:
                ids = ids[:-1]
            contexts.append(list(episode.prompt_ids) + ids + check)
            verdicts.append(yes if episode.success else no)
            positives += bool(episode.success)
    for j, problem in enumerate(problems[own:]):
        candidate = env.expert(problem, rng)
        if j % 2:
            candidate = corrupt(candidate, env.alphabet, rng)
        correct = bool(env.verify(problem, candidate))
        contexts.append(policy.prompt_ids(problem.prompt) + policy.encode(candidate) + check)
        verdicts.append(yes if correct else no)
        positives += correct
    return contexts, verdicts, positives / max(size, 1)


def verdict_accuracy(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Share of candidates whose log-odds has the sign of the true label (0 counts as 'no')."""
    if len(scores) != len(labels) or not scores:
        raise ValueError(f"scores and labels: expected equal, non-empty lengths, got {len(scores)} and {len(labels)}")
    return sum((s > 0) == bool(y) for s, y in zip(scores, labels)) / len(scores)


__all__ = ["corrupt", "verification_rows", "verdict_accuracy"]
