"""Best-of-N: pick one of N sampled candidates by a scorer (Cobbe et al. 2021, "Training
verifiers to solve math word problems"; Lightman et al. 2023, "Let's verify step by step").

    y* = argmax_{i <= k} s(x, y_i)

where s is any scorer (a value head, the policy judging itself, a reward model). Unlike majority
vote it needs no parseable answer, and unlike oracle@k it never looks at the answer key, so it is
a deployable decoder; its gap to oracle@k measures how much the scorer leaves on the table.

Retry (`select_retry`) is the sequential form an agent uses: try, and accept the try if the scorer
believes it succeeded (score >= threshold, the value head's P(success) >= 0.5 by default), else try
again, at most k times; the last try stands when none is accepted. It spends fewer tries than
best-of-k on easy tasks. Tries happen on copies of the task (a sandbox), and the accepted one counts.

Scoring is separated from selection so one scoring pass over n samples serves every k <= n:
best@k only takes the argmax over the first k scores, retry@k reads them in order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from alphaloop.episode import Episode

T = TypeVar("T")
Groups = Sequence[Sequence[Episode]]
Scores = Sequence[Sequence[float]]


def best_index(scores: Sequence[float]) -> int:
    """Index of the highest score; ties go to the earliest candidate and NaN never wins (a scorer
    that fails on one candidate must not make it the pick). All-NaN picks candidate 0."""
    if not scores:
        raise ValueError("scores: expected at least one candidate's score")
    best, best_score = 0, None
    for i, s in enumerate(scores):
        if not math.isnan(s) and (best_score is None or s > best_score):
            best, best_score = i, s
    return best


def best_of_n(candidates: Sequence[T], scores: Sequence[float], k: int | None = None) -> T:
    """The candidate with the highest score among the first k (all when k is None)."""
    if len(candidates) != len(scores):
        raise ValueError(f"scores: expected one per candidate ({len(candidates)}), got {len(scores)}")
    k = len(candidates) if k is None else k
    if not 1 <= k <= len(candidates):
        raise ValueError(f"k: expected 1 <= k <= {len(candidates)} (the candidates drawn), got {k}")
    return candidates[best_index(scores[:k])]


def select_best(groups: Groups, scores: Scores, k: int) -> list[Episode]:
    """best@k per problem: `groups[p]` are problem p's samples, `scores[p]` their scores."""
    if len(groups) != len(scores):
        raise ValueError(f"scores: expected one list per problem ({len(groups)}), got {len(scores)}")
    return [best_of_n(group, group_scores, k) for group, group_scores in zip(groups, scores)]


def best_of_n_accuracy(groups: Groups, scores: Scores, k: int) -> float:
    """Share of problems whose best@k pick is correct by the env's verifier (episode.success)."""
    if not groups:
        raise ValueError("groups: expected at least one problem's samples")
    return sum(e.success for e in select_best(groups, scores, k)) / len(groups)


def retry_index(scores: Sequence[float], threshold: float = 0.5) -> int:
    """The first try whose score reaches `threshold` (NaN never does), else the last one."""
    if not scores:
        raise ValueError("scores: expected at least one try's score")
    return next((i for i, s in enumerate(scores) if not math.isnan(s) and s >= threshold), len(scores) - 1)


def select_retry(groups: Groups, scores: Scores, k: int, threshold: float = 0.5) -> tuple[list[Episode], list[int]]:
    """retry@k per problem: (the try that stands, the number of tries it took)."""
    if len(groups) != len(scores):
        raise ValueError(f"scores: expected one list per problem ({len(groups)}), got {len(scores)}")
    chosen, tries = [], []
    for group, group_scores in zip(groups, scores):
        if not 1 <= k <= len(group):
            raise ValueError(f"k: expected 1 <= k <= {len(group)} (the tries drawn), got {k}")
        i = retry_index(group_scores[:k], threshold)
        chosen.append(group[i])
        tries.append(i + 1)
    return chosen, tries


__all__ = ["best_index", "best_of_n", "select_best", "best_of_n_accuracy", "retry_index", "select_retry"]
