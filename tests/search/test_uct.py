"""Plain UCT with random rollouts (Kocsis & Szepesvari 2006) converges to the minimax value:
checked against an exact negamax of tic-tac-toe on positions of every value."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from alphaloop.games.tictactoe import TicTacToeState
from alphaloop.search import MCTS, MCTSConfig, RandomRolloutEvaluator


@cache
def negamax(moves: str) -> int:
    """Exact value (+1 win, 0 draw, -1 loss) for the player to move after `moves` (1-based cells)."""
    state = TicTacToeState.from_moves(moves)
    if state.is_terminal():
        return -1 if any(state.returns()) else 0   # the previous mover completed a line
    return max(-negamax(moves + str(a + 1)) for a in state.legal_actions())


@pytest.mark.parametrize(
    "moves, value",
    [
        ("1437", 1),    # win in one
        ("5127", 1),    # win in one (column) while O also threatens
        ("19", 1),      # corner vs far corner: a win in three (via a fork)
        ("152", 0),     # forced block, then a draw
        ("15", 0),      # corner / centre: a draw
        ("12379", -1),  # O to move facing X's fork: lost
    ],
)
def test_uct_converges_to_minimax(moves: str, value: int) -> None:
    assert negamax(moves) == value
    state = TicTacToeState.from_moves(moves)
    config = MCTSConfig(num_simulations=4000, selection="uct", batch_size=1)
    result = MCTS(RandomRolloutEvaluator(seed=0), config, seed=0).search(state)
    best = int(np.argmax(result.visit_counts))
    assert -negamax(moves + str(best + 1)) == value          # the most visited move is minimax-optimal
    assert abs(result.q_values[best] - value) < 0.3          # and its mean return near the true value
    assert result.visit_counts.sum() == 4000


def test_uct_expands_every_child_before_revisiting() -> None:
    # Textbook UCT: the first len(legal) simulations each try a new move.
    state = TicTacToeState.from_moves("5")
    config = MCTSConfig(num_simulations=8, selection="uct", batch_size=1)
    result = MCTS(RandomRolloutEvaluator(seed=0), config, seed=0).search(state)
    assert result.visit_counts.tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 1]
