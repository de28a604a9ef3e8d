"""The expert-iteration filter keeps exactly what it should: verified, majority or best-scored samples,
distinct, at most `keep` per prompt."""

import pytest

from alphaloop.episode import Episode
from alphaloop.learners.expert_iteration import accepted


def sample(ids, success, answer):
    return Episode(observations=["q"], actions=["a"], prompt_ids=[1], action_ids=list(ids), success=success,
                   rewards=[float(success)], info={"answer": answer})


GROUP = [sample([5, 2], False, "7"), sample([4, 1], True, "5"), sample([4, 1], True, "5"),
         sample([3, 3], True, "5"), sample([9], False, None), sample([6, 6], False, "7"), sample([6, 5], False, "7")]


def test_verifier_keeps_exactly_the_verified_distinct_samples():
    assert accepted(GROUP, "verifier", keep=8) == [1, 3]         # [4, 1] twice: kept once
    assert accepted(GROUP, "verifier", keep=1) == [1]
    assert accepted([sample([1], False, "1")] * 3, "verifier", keep=8) == []


def test_majority_keeps_samples_with_the_majority_answer_when_it_has_enough_votes():
    # "5" and "7" have three votes each; the tie goes to the answer seen first ("7"); None never votes.
    assert accepted(GROUP, "majority", keep=8, min_agreement=0.4) == [0, 5, 6]
    assert accepted(GROUP, "majority", keep=8, min_agreement=0.5) == []   # 3 of 7 votes < half
    assert accepted(GROUP[1:4], "majority", keep=8) == [0, 2]           # indices into the group given
    assert accepted([sample([9], False, None)] * 2, "majority", keep=8) == []


def test_scores_keep_the_best_distinct_samples_by_score():
    scores = [0.1, 0.9, 0.9, 0.5, 0.95, 0.0, 0.2]
    assert accepted(GROUP, "scores", keep=2, scores=scores) == [4, 1]
    assert accepted(GROUP, "scores", keep=3, scores=scores) == [4, 1, 3]   # the duplicate of 1 is skipped
    assert accepted(GROUP, "scores", keep=8, scores=scores, min_score=0.5) == [4, 1, 3]   # a learned verifier's line
    assert accepted(GROUP, "scores", keep=8, scores=scores, min_score=0.96) == []
    with pytest.raises(ValueError, match="one score per sample"):
        accepted(GROUP, "scores", keep=2, scores=[1.0])
