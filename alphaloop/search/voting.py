"""Voting: pick the answer most samples agree on (self-consistency, Wang et al. 2023).

    maj@k(x) = argmax_a  sum_{i <= k} 1[answer(y_i) = a]

A verifier-free search: it needs only a parseable answer, and is right whenever the policy's
most frequent answer is, so it sharpens a policy that is right more often than it is wrong in
any one way. Used by the maj@k decoder (`evals/evaluate.py`) and as the teacher of expert
iteration without labels (`learners/expert_iteration.py`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence


def majority_vote(answers: Sequence[str | None], rng: random.Random | None = None) -> str | None:
    """maj@k: the most common non-None answer (self-consistency, Wang et al. 2023).

    None marks a sample with no parseable answer and never wins. Ties go to the answer seen first,
    so the vote is deterministic; pass `rng` to break ties uniformly at random instead.
    Returns None when no sample has an answer.
    """
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    tied = [a for a in counts if counts[a] == best]  # Counter keeps first-seen order
    return rng.choice(tied) if rng is not None and len(tied) > 1 else tied[0]
