"""Scorers say how good an outcome is: `score(episodes) -> list[float]`, higher is better.

Public API: `Scorer` (the protocol), `ValueScorer` (a PPO critic's estimate), `JudgeScorer`
(the policy rating its own candidates) and `JudgeTemplate`. Search (`alphaloop.search.best_of_n`)
turns any of them into a decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from alphaloop.episode import Episode
from alphaloop.scorers.judge import JudgeScorer, JudgeTemplate
from alphaloop.scorers.value import ValueScorer


class Scorer(Protocol):
    def score(self, episodes: Sequence[Episode]) -> list[float]: ...


__all__ = ["Scorer", "ValueScorer", "JudgeScorer", "JudgeTemplate"]
