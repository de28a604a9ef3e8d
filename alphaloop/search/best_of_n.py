"""Best-of-N: pick one of N sampled candidates by a scorer (Cobbe et al. 2021, "Training
verifiers to solve math word problems"; Lightman et al. 2023, "Let's verify step by step").

    y* = argmax_{i <= k} s(x, y_i)

where s is any scorer (a value head, the policy judging itself, a reward model). Unlike majority
vote it needs no parseable answer, and unlike oracle@k it never looks at the answer key, so it is
a deployable decoder; its gap to oracle@k measures how much the scorer leaves on the table.

Scoring is separated from selection so one scoring pass over n samples serves every k <= n:
best@k only takes the argmax over the first k scores.
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


__all__ = ["best_index", "best_of_n", "select_best", "best_of_n_accuracy"]
