"""Leaf evaluators: shapes, uniform priors, and random play-out values with hand-computed means."""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import Nim

from alphaloop.games.tictactoe import TicTacToeState
from alphaloop.search import RandomRolloutEvaluator, UniformEvaluator


def test_uniform_evaluator() -> None:
    priors, values = UniformEvaluator().evaluate([TicTacToeState(), TicTacToeState.from_moves("5")])
    assert priors.shape == (2, 9) and np.allclose(priors, 1 / 9)
    assert values.tolist() == [0.0, 0.0]


def test_rollout_values() -> None:
    evaluator = RandomRolloutEvaluator(seed=0, rollouts=4000)
    # 1 stone: the player to move takes it and wins. 2 stones: take 2 (win) or take 1 (lose), p = 1/2
    # each, mean 0. 3 stones: take 3 wins (1/3); take 2 -> opponent takes the last (lose, 1/3);
    # take 1 -> from 2 the opponent wins with p 1/2 -> mean (1 - 1 + 0) / 3 = 0.
    # 4 stones: take 1 -> opponent at 3 (value 0); take 2 -> opponent at 2 (0); take 3 -> opponent
    # at 1 loses us the game (-1): mean -1/3.
    priors, values = evaluator.evaluate([Nim(1), Nim(2), Nim(3), Nim(4)])
    assert priors.shape == (4, 3) and np.allclose(priors, 1 / 3)
    assert values[0] == 1.0
    assert values[1:] == pytest.approx([0.0, 0.0, -1 / 3], abs=0.05)


def test_rollout_is_seeded_and_never_mutates_the_state() -> None:
    state = TicTacToeState.from_moves("5")
    a = RandomRolloutEvaluator(seed=3, rollouts=50).evaluate([state])[1]
    b = RandomRolloutEvaluator(seed=3, rollouts=50).evaluate([state])[1]
    assert a == b and state.to_moves() == "5"


def test_rollout_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="rollouts"):
        RandomRolloutEvaluator(rollouts=0)
    with pytest.raises(ValueError, match="non-terminal"):
        RandomRolloutEvaluator().evaluate([TicTacToeState.from_moves("12539")])
    with pytest.raises(ValueError, match=r"states\[1\]"):
        UniformEvaluator().evaluate([TicTacToeState(), Nim(3)])
