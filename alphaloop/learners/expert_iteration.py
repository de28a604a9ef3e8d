"""Expert iteration for language policies: which of a policy's own samples it should imitate.

One round of expert iteration (STaR, Zelikman et al. 2022; ReST-EM, Singh et al. 2023; the
"Expert Iteration" of Anthony et al. 2017 with sampling + a filter as the expert) is

    E-step:  for prompts x ~ D, draw y_1..y_k ~ pi_old(.|x); accept y_i where the filter F does
    M-step:  theta <- argmax_theta  sum_x sum_{i: F(x, y_i)} log pi_theta(y_i | x)

With a 0/1 reward r as the filter this is EM on the reward-weighted likelihood
E_x E_{y ~ pi_old} [r(x, y) log pi_theta(y | x)] (ReST-EM, eq. 3): policy improvement by imitation,
with no importance ratios, critics or advantages -- the M-step is plain SFT (`learners/imitate.py`).

The filter is what makes the kept samples better than the policy's average, i.e. the search:

* `verifier`: the env's exact check (STaR's rationale filter, ReST-EM's binary reward);
* `majority`: the sample's answer equals the majority answer of its k samples (self-consistency
  as the teacher: Huang et al. 2022, "Large language models can self-improve"), needing no labels.
  Its kept samples are only as right as maj@k is;
* `scores`: the top-scoring samples by a scorer (best-of-k by a reward model, a value head or the
  policy's own verdict), only those scoring at least `min_score` when it is given -- the ReST
  "Improve" step's threshold. A learned verifier (a value head's P(correct), a judge's log-odds of
  "yes") has a natural threshold, and without one the rank alone keeps `keep` samples of every
  prompt, wrong ones included: identical right answers collapse into one distinct completion while
  wrong ones differ, so the top `keep` distinct samples can be mostly wrong.

Identical completions of one prompt are kept once (a duplicate adds no new behaviour, only
weight), and at most `keep` per prompt, so prompts the policy already solves every time do not
crowd out the hard ones the round is for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from alphaloop.episode import Episode
from alphaloop.search.voting import majority_vote

Filter = Literal["verifier", "majority", "scores"]


def accepted(group: Sequence[Episode], how: Filter, keep: int, scores: Sequence[float] | None = None,
             min_agreement: float = 0.5, min_score: float | None = None) -> list[int]:
    """Indices into `group` (the k samples of one prompt, scored by the env's verifier) of the samples
    to imitate, at most `keep`, distinct completions only, in sampling order (by score for `scores`).

    `majority` accepts samples whose parsed answer (`info["answer"]`) is the group's majority answer,
    if that answer holds at least `min_agreement` of the k votes; `scores` accepts the `keep` highest
    `scores[i]` (ties to the earlier sample), of those at least `min_score` when it is given."""
    if how == "verifier":
        order = [i for i, episode in enumerate(group) if episode.success]
    elif how == "majority":
        answers = [episode.info.get("answer") for episode in group]
        winner = majority_vote(answers)
        if winner is None or answers.count(winner) < min_agreement * len(group):
            return []
        order = [i for i, answer in enumerate(answers) if answer == winner]
    elif how == "scores":
        if scores is None or len(scores) != len(group):
            raise ValueError("filter 'scores' needs one score per sample")
        order = sorted((i for i in range(len(group)) if min_score is None or scores[i] >= min_score),
                       key=lambda i: (-scores[i], i))
    else:
        raise ValueError(f"unknown filter {how!r}: expected verifier, majority or scores")
    kept: list[int] = []
    seen: set[tuple[int, ...]] = set()
    for i in order:
        completion = tuple(group[i].action_ids)
        if completion in seen:
            continue
        seen.add(completion)
        kept.append(i)
        if len(kept) == keep:
            break
    return kept
