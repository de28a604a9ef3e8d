"""Alpha-beta: tactics, proven values, strength against random play."""

from __future__ import annotations

import pytest

from alphaloop.games.alphabeta import WIN, AlphaBetaPlayer
from alphaloop.games.connect4 import Connect4State
from alphaloop.games.players import PerfectTicTacToe, RandomPlayer, play_game
from alphaloop.games.tictactoe import TicTacToeState


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_connect4_wins_in_one_and_blocks(depth):
    player = AlphaBetaPlayer(depth=depth, seed=0)
    assert player.choose(Connect4State.from_moves("121212")) == 0        # X completes column 1
    assert player.choose(Connect4State.from_moves("71727")) == 6         # O must block column 7
    assert player.value(Connect4State.from_moves("121212")) == WIN - 7   # wins with stone 7


def test_connect4_proven_loss_and_double_threat():
    # X has 2, 3, 4 on the bottom row with both ends open: O cannot stop it.
    state = Connect4State.from_moves("2737")
    state.apply_action(3)
    player = AlphaBetaPlayer(depth=3)
    assert player.value(state) == -(WIN - 7)          # O loses to X's 7th stone
    assert player.move_values(state)[0] == -(WIN - 7)


def test_tictactoe_generic_search():
    player = AlphaBetaPlayer(depth=9, seed=0)
    assert player.value(TicTacToeState()) == 0
    assert player.choose(TicTacToeState.from_moves("1425")) == 2         # win at once
    assert player.choose(TicTacToeState.from_moves("152")) == 2          # block X's top row
    perfect = PerfectTicTacToe()
    for g in range(20):
        returns = play_game(TicTacToeState(), (AlphaBetaPlayer(9, seed=g), perfect))
        assert returns == [0.0, 0.0]


def test_connect4_beats_random_and_noise_validation():
    for g in range(10):
        returns = play_game(Connect4State(), (RandomPlayer(g), AlphaBetaPlayer(3, seed=g)))
        assert returns[1] == 1.0
    with pytest.raises(ValueError, match="depth must be"):
        AlphaBetaPlayer(depth=0)
    with pytest.raises(ValueError, match="noise must be"):
        AlphaBetaPlayer(depth=2, noise=1.5)


def test_noise_one_is_random_and_seeded():
    state = Connect4State()
    players = AlphaBetaPlayer(4, seed=1, noise=1.0), AlphaBetaPlayer(4, seed=1, noise=1.0)
    assert [players[0].choose(state) for _ in range(20)] == [players[1].choose(state) for _ in range(20)]
    assert len({players[0].choose(state) for _ in range(50)}) > 3      # not always the centre


def pons_to_alphabeta(score: int, n: int) -> int:
    """Pons score -> our proven value +-(1000 - ply of the winning stone)."""
    if score == 0:
        return 0
    winner_first = (n % 2 == 0) == (score > 0)
    stones = 22 - abs(score)
    ply = 2 * stones - 1 if winner_first else 2 * stones
    return (WIN - ply) if score > 0 else -(WIN - ply)


def test_searching_to_the_end_is_exact_on_pons_endgames():
    from .test_solver import PONS_LINES

    for moves, score in PONS_LINES[:-1]:                                 # the Test_L3_R1 lines
        state = Connect4State.from_moves(moves)
        player = AlphaBetaPlayer(depth=42 - state.num_moves())
        assert player.value(state) == pons_to_alphabeta(score, state.num_moves()), moves
